"""`monitor run`: wiring polling, matching, escalation and delivery so that none waits on
another.

  polling     due sources → a persistent pool of workers (sources/engine.py), fed every
              poll_check; a finished poll wakes processing at once
  processing  its own thread: match stored posts, assign incidents (pipeline.py)
  tick        its own executor: escalation steps and handoffs
  delivery    its own executor: the outbox, looked at between sends for shutdown
  the rest    health checks, rule reload, reports: a shared executor

Start-up order matters for "nothing lost": migrations → catch up posts stored but not
processed → catch up escalation steps that fell due while we were down → jobs → READY.
SIGTERM stops within STOP_BUDGET seconds whatever runs: a poll stuck in a slow read is
left behind, and loses nothing (its transaction never committed).

Slightly over 350 lines on purpose: start, reload and stop must see every job they swap or
stop; each job's own work lives in its package.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import signal
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from monitor.alerts.handoff import send_handoffs
from monitor.alerts.links import links_for
from monitor.alerts.notices import Alerting, database_outage
from monitor.alerts.outbox import Delivery
from monitor.app import App, build, load_channels, make_matcher, setup_logging
from monitor.clock import Clock, SystemClock, show, show_delta
from monitor.config import Config, ConfigError
from monitor.config import load as load_config
from monitor.config.changes import by_name, describe_changes, needs_restart, read_bytes, signature
from monitor.config.loading import rule_files
from monitor.metrics import TICK_SECONDS
from monitor.sources import health
from monitor.sources.engine import PollEngine
from monitor.sources.http import make_client
from monitor.sources.poll import Poller, PollResult
from monitor.store.db import safe_url
from monitor.store.faults import DbHealth, is_transient
from monitor.systemd import Notifier

log = logging.getLogger(__name__)

STOP_BUDGET = 8.0  # seconds from SIGTERM to exit (deploy/monitor.service allows 15)
HEALTH_EVERY = 30  # seconds between source health checks
COALESCE = 0.2  # seconds processing waits after a wake-up for the polls finishing with it
DELIVER_BATCH = 100  # due alerts taken per delivery round, the most urgent first
DRAIN_ROUNDS = 50  # rounds one delivery job may run back to back


class Daemon:
    def __init__(self, cfg: Config, clock: Clock | None = None):
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.stop_event = threading.Event()
        self.reload_requested = threading.Event()
        self.wake_processing = threading.Event()
        self.deliver_wanted = threading.Event()  # posts were processed during a delivery round
        self.delivering = threading.Event()
        self.notifier = Notifier()
        self.last_tick = time.monotonic()
        self.last_handoff_check = self.clock.now()
        self.db = DbHealth(self.clock, cfg.main.database.alert_after)
        self.app: App | None = None
        self.demo = None
        self.engine: PollEngine | None = None
        self.processor: threading.Thread | None = None
        self.ready = False
        self.metrics = None

    def start(self) -> None:
        started = time.monotonic()
        cfg = self.cfg
        if cfg.main.demo is not None:
            from monitor.demo import DemoServer

            self.demo = DemoServer(cfg)
            self.demo.start()
        self.app = app = build(cfg, self.clock)
        log.info("数据库：%s", safe_url(cfg.database_url()))
        if cfg.main.metrics is not None:
            self.metrics = self._start_metrics(cfg.main.metrics)
        app.pipeline.matcher.segmenter.initialize()
        main = cfg.main
        workers = main.daemon.workers
        # Every poll under way holds a connection: the pool must allow as many as can run.
        self.client = make_client(main.http, connections=PollEngine.capacity_for(workers))
        self.poller = Poller(app.sessions, self.client, main.http, self.clock, random.Random(), retention=main.retention.posts,
                             lease=main.daemon.lease)
        self.poller.register(main.source)
        self.links = links_for(cfg, self.clock)
        self.delivery = Delivery(app.sessions, app.channels, self.clock, main.alerts, ops_tags=main.ops_tags, links=self.links)
        caught_up = app.pipeline.process_pending()
        app.pipeline.record_replies()
        fired = app.pipeline.tick()
        if caught_up or fired:
            log.info("启动补处理：帖文 %d 条，到期提醒/升级 %d 条", caught_up, fired)

        self.engine = PollEngine(self.poller, main.source, workers, self.db, on_done=self._poll_done)
        self.processor = threading.Thread(target=self._process_loop, name="processing", daemon=True)
        self.processor.start()
        self.scheduler = BackgroundScheduler(
            executors={
                "default": ThreadPoolExecutor(2),
                "dispatch": ThreadPoolExecutor(1),
                "tick": ThreadPoolExecutor(1),
                "deliver": ThreadPoolExecutor(1),
                "watchdog": ThreadPoolExecutor(1),
            },
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        job = self.scheduler.add_job
        job(self._guarded("轮询调度", self.dispatch_job), "interval", seconds=main.daemon.poll_check.total_seconds(),
            id="poll", executor="dispatch", next_run_time=self._soon())
        job(self._guarded("升级检查", self.tick_job), "interval", seconds=main.escalation.tick.total_seconds(), id="tick",
            executor="tick", next_run_time=self._soon())
        self.config_signature = signature(self.cfg)
        self.apprise_bytes = read_bytes(cfg.apprise_path)
        job(self.rules_job, "interval", seconds=2, id="rules")
        job(self._guarded("告警投递", self.deliver_job), "interval", seconds=main.alerts.deliver_every.total_seconds(),
            id="deliver", executor="deliver", next_run_time=self._soon())
        job(self._guarded("来源健康检查", self.health_job), "interval", seconds=HEALTH_EVERY, id="health", next_run_time=self._soon())
        job(self._guarded("清理过期帖文", self.retention_job), "interval", seconds=main.retention.every.total_seconds(), id="retention")
        if main.report.enabled:
            from monitor.reports.schedule import Reporter

            self.reporter = Reporter(cfg, app.sessions, app.channels, self.clock)
            job(self._guarded("周报", self.reporter.run_due), "interval", seconds=60, id="report", next_run_time=self._soon())
        watchdog_usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        if watchdog_usec:
            job(self.watchdog_job, "interval", seconds=max(watchdog_usec / 2e6, 1), id="watchdog", executor="watchdog")
        self.scheduler.start()
        self.console = self._start_console() if self.links is not None else None
        # What start-up built (the dictionary, the rules' automaton, the store's mappings) lives
        # as long as the process: kept out of the collector's full passes, which otherwise
        # walked it every few seconds under load and stopped every thread for ~140 ms each.
        gc.freeze()
        self.ready = True
        self.notifier.notify("READY=1")
        self.notifier.notify(f"STATUS=运行中：{len(main.source)} 个来源，{len(cfg.rules)} 条规则")
        log.info("监测已启动：%d 个来源，%d 条规则，用时 %.2f 秒", len(main.source), len(cfg.rules), time.monotonic() - started)

    def _start_metrics(self, settings):
        from monitor.metrics import MetricsServer

        try:
            server = MetricsServer(settings.host, settings.port, self.app.sessions, self.clock, self.stuck, self.not_ready)
        except OSError as e:  # the port is taken: monitoring goes on, unwatched
            log.error("指标服务无法在 %s 启动（%s）：监测照常运行", settings.listen, e.strerror or e)
            return None
        server.start()
        log.info("指标：http://%s:%d/metrics（健康检查 /healthz、/readyz）", server.host, server.port)
        return server

    def stuck(self) -> str | None:
        """/healthz and the systemd watchdog: None while the loops turn, else what stopped."""
        stale = self.cfg.main.escalation.tick.total_seconds() * 3 + 30
        if time.monotonic() - self.last_tick >= stale:
            return f"升级检查已 {time.monotonic() - self.last_tick:.0f} 秒未运行"
        if self.processor is not None and not self.processor.is_alive() and not self.stop_event.is_set():
            return "帖文处理线程已退出"
        return None

    def not_ready(self) -> str | None:
        """/readyz: None once started and while the store answers."""
        if self.stop_event.is_set():
            return "正在停止"
        if not self.ready:
            return "正在启动（补处理积压的帖文与提醒）"
        if self.db.down:
            return f"数据库不可用：{self.db.reason}"
        return self.stuck()

    def _start_console(self):
        from monitor.web.server import start_console  # FastAPI is imported only where a console is wanted

        return start_console(lambda: self.cfg, lambda: self.app, self.clock, self.links, self.demo is not None)

    @staticmethod
    def _soon() -> datetime:
        # APScheduler runs on real time whatever clock the monitor is given.
        return datetime.now(timezone.utc) + timedelta(milliseconds=200)

    def _guarded(self, what: str, fn: Callable[[], object]) -> Callable[[], None]:
        """A job whose database faults are the database's: one line per outage (DbHealth),
        no traceback, and the work is done again at the next run. A job that returns a true
        value wrote to the database: only that proves it is back (reads pass a SQLite write
        lock, so a read that worked says nothing)."""

        def run() -> None:
            try:
                wrote = fn()
            except Exception as e:
                if is_transient(e):
                    self.db.failed(e, what)
                    return
                log.exception("%s出错", what)
                return
            if wrote:
                self.db.ok()
            if not self.db.down:
                self._report_outages()

        run.__name__ = getattr(fn, "__name__", what)
        return run

    def _report_outages(self) -> None:
        """Each outage that lasted past [database] alert_after: one ops alert, now that it can be recorded."""
        for outage in self.db.take_pending():
            try:
                with self.app.sessions.begin() as session:
                    database_outage(session, self.app.channels, outage, self.cfg.main.ops_tags, self.clock.now())
            except Exception as e:
                if not is_transient(e):
                    raise
                self.db.give_back([outage])
                return

    # ---- jobs ----------------------------------------------------------------------

    def _poll_done(self, result: PollResult) -> None:
        if result.status == "new":  # new posts, or reply states that changed
            self.wake_processing.set()

    def _process_loop(self) -> None:
        """Posts are processed as soon as a poll brings them, and at least every poll_check."""
        every = self.cfg.main.daemon.poll_check.total_seconds()
        while not self.stop_event.is_set():
            if self.wake_processing.wait(every):
                # Polls finish in bursts: a moment's wait lets one batch take them all,
                # instead of a transaction per poll fighting the pollers for the write lock.
                self.stop_event.wait(COALESCE)
            self.wake_processing.clear()
            if self.stop_event.is_set():
                return
            self._guarded("处理帖文", self.process_job)()

    def dispatch_job(self) -> int:
        return self.engine.dispatch()  # claims due sources (one short write); the polls report to DbHealth themselves

    def process_job(self) -> int:
        done = self.app.pipeline.process_pending() + self.app.pipeline.record_replies()
        if done:
            self._deliver_soon()
        return done

    def _deliver_soon(self) -> None:
        """Processed posts may have queued alerts: deliver them now, not up to deliver_every
        later (which was most of the time from a post's poll to its alert). A round already
        under way may have read the outbox before these rows were committed: it goes once more."""
        self.deliver_wanted.set()
        if self.delivering.is_set():
            return
        try:
            self.scheduler.modify_job("deliver", next_run_time=datetime.now(timezone.utc))
        except Exception as e:  # stopping: the scheduler is gone, and so is the need
            log.debug("提前投递告警未能安排：%s", e)

    def health_job(self) -> int:
        with self.app.sessions.begin() as session:
            return len(health.check(session, self.cfg.main, self.app.channels, self.clock.now()))

    def retention_job(self) -> int:
        keep = self.cfg.main.retention.posts
        if keep is None:
            return 0
        from monitor.store.retention import prune

        pruned = prune(self.app.sessions, self.clock.now() - keep, stop=self.stop_event.is_set)
        if pruned:
            log.info("已清理 %d 条超过保留期（%s）且不属于任何事件的帖文", pruned, show_delta(keep))
        return pruned

    def rules_job(self) -> None:
        """Reload the whole configuration on SIGHUP or when one of its files changes."""
        now_on_disk = signature(self.cfg)
        if not self.reload_requested.is_set() and now_on_disk == self.config_signature:
            return
        self.reload_requested.clear()
        self.config_signature = now_on_disk
        self.reload()

    def reload(self) -> bool:
        """Validate the new configuration whole (monitor.toml, rules, apprise.yml), then apply
        all of it or none (Alertmanager's rule): on error the old one stays, and the log says
        where (file:line). One line says what changed."""
        old = self.cfg
        try:
            new = load_config(old.path)
            if not new.rules:
                raise ConfigError([f"{old.path}: 没有任何 [[rule]]"])
            channels = load_channels(new)
        except ConfigError as e:
            rules = {str(p) for p in rule_files(self.cfg)}
            if e.problems and all(any(problem.startswith(f) for f in rules) for problem in e.problems):
                log.error("规则文件有误，继续使用原有的 %d 条规则：%s", len(old.rules), "；".join(e.problems))
            else:
                log.error("配置有误，继续使用原有配置：%s", "；".join(e.problems))
            return False
        matcher = None
        if new.rules != old.rules:
            matcher = make_matcher(new, new.rules)
            matcher.segmenter.initialize()  # the slow part, before anything is swapped
        frozen = needs_restart(old, new)
        main = new.main
        try:
            self.poller.register(main.source)  # rows for added sources: the one write, first
        except Exception as e:
            if not is_transient(e):
                raise
            self.db.failed(e, "重新加载配置")
            self.config_signature = ()  # try again at the next look
            return False
        changes = describe_changes(old, new)
        apprise_now = read_bytes(new.apprise_path)
        if apprise_now != self.apprise_bytes:
            changes.append("告警地址（apprise 配置）已更新")
        app = self.app
        with app.pipeline._lock:  # no batch or tick sees half of each
            if matcher is not None:
                app.pipeline.replace_matcher(matcher)
            app.incidents.reconfigure(main, Alerting(channels, app.incidents.alerting.dry_run))
            app.cfg, app.channels = new, channels
            self.poller.http, self.poller.retention = main.http, main.retention.posts
            self.engine.set_sources(main.source)
            self.delivery.channels, self.delivery.cfg, self.delivery.ops_tags = channels, main.alerts, main.ops_tags
            if getattr(self, "reporter", None) is not None:
                self.reporter.cfg, self.reporter.report_cfg, self.reporter.channels = new, main.report, channels
            self.cfg, self.apprise_bytes = new, apprise_now
        if matcher is not None:
            gc.freeze()  # the new rules live until the next reload, as start-up's did
        for job_id, seconds in (("poll", main.daemon.poll_check), ("tick", main.escalation.tick), ("deliver", main.alerts.deliver_every),
                                ("retention", main.retention.every)):
            self.scheduler.reschedule_job(job_id, trigger="interval", seconds=seconds.total_seconds())
        if new.rules != old.rules:
            added, removed, changed = by_name(old.rules, new.rules)
            log.info("规则已重新加载：%d 条（新增 %s；删除 %s；修改 %s）", len(new.rules),
                     "、".join(added) or "无", "、".join(removed) or "无", "、".join(changed) or "无")
        log.info("配置已重新加载：%s", "；".join(changes) or "没有变化")
        if frozen:
            log.warning("以下设置需重启服务才生效（仍按原值运行）：%s", "、".join(frozen))
        self.notifier.notify(f"STATUS=运行中：{len(main.source)} 个来源，{len(new.rules)} 条规则（配置已于 {show(self.clock.now())} 重新加载）")
        return True

    def tick_job(self) -> int:
        began = time.monotonic()
        fired = self.app.pipeline.tick()
        now = self.clock.now()
        # Shift starts within the last few ticks: a digest missed by hours would only confuse.
        after = max(self.last_handoff_check, now - self.cfg.main.escalation.tick * 20)
        with self.app.sessions.begin() as session:
            send_handoffs(session, self.cfg.main, self.app.channels, after, now)
        self.last_handoff_check = now
        self.last_tick = time.monotonic()
        TICK_SECONDS.observe(self.last_tick - began)
        return fired

    def deliver_job(self) -> int:
        """Round after round while rounds come back full: a burst drains now, not 100 per deliver_every."""
        total = 0
        self.delivering.set()
        try:
            for _pass in range(DRAIN_ROUNDS):  # under steady ingest, the next job run takes over
                self.deliver_wanted.clear()
                for _round in range(DRAIN_ROUNDS):
                    sent = self.delivery.deliver_due(limit=DELIVER_BATCH, stop=self.stop_event)
                    total += sent
                    if sent < DELIVER_BATCH or self.stop_event.is_set():
                        break
                if not self.deliver_wanted.is_set() or self.stop_event.is_set():
                    break
            return total
        finally:
            self.delivering.clear()

    def watchdog_job(self) -> None:
        # Ping only while the loops turn: a wedged scheduler must get us restarted.
        problem = self.stuck()
        if problem is None:
            self.notifier.notify("WATCHDOG=1")
        else:
            log.error("%s，停止向 systemd 报活", problem)

    # ---- lifecycle -----------------------------------------------------------------

    def stop(self) -> None:
        """Within STOP_BUDGET seconds, whatever runs: jobs finish their current step, polls
        still reading are left behind (nothing of theirs was committed)."""
        began = time.monotonic()
        self.stop_event.set()
        self.wake_processing.set()
        self.notifier.notify("STOPPING=1")
        log.info("正在停止……")
        left = lambda: max(0.0, STOP_BUDGET - (time.monotonic() - began))  # noqa: E731
        scheduler = getattr(self, "scheduler", None)
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        if self.engine is not None:
            stuck = self.engine.stop(min(left(), 3.0))
            if stuck:
                log.info("停止时仍在读取的来源（下次启动重新抓取，不丢数据）：%s", "、".join(stuck))
        if getattr(self, "console", None) is not None:
            self.console.stop(min(left(), 2.0))
        if self.metrics is not None:
            self.metrics.stop()
        if self.processor is not None:
            self.processor.join(left())
        if self.app is not None:
            self.delivery.close()
            try:
                self.delivery.flush()
            except Exception as e:  # the database is still down: the lease sends these again
                log.warning("停止时有 %d 条已发送的告警未能记录：%s", len(self.delivery.unrecorded), e)
        if getattr(self, "poller", None) is not None:
            try:  # the others may take our sources at once, not after the lease
                self.poller.release_leases()
            except Exception as e:
                log.info("停止时未能释放来源租约（%s）：%s 后由其他实例接手", type(e).__name__, show_delta(self.cfg.main.daemon.lease))
        if getattr(self, "client", None) is not None:
            self.client.close()
        if self.demo is not None:
            self.demo.stop()
        if self.app is not None and (self.processor is None or not self.processor.is_alive()):
            self.app.engine.dispose()
        log.info("已停止（用时 %.1f 秒）", time.monotonic() - began)

    def run_forever(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload_requested.set())
        self.start()
        try:
            while not self.stop_event.wait(1.0):
                pass
        finally:
            self.stop()
        return 0


def run(cfg: Config) -> int:
    setup_logging(cfg.main.daemon.log_level)
    return Daemon(cfg).run_forever()
