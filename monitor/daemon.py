"""`monitor run`: APScheduler jobs wiring polling, matching, escalation and delivery.

Start-up order matters for "nothing lost": migrations → catch up posts stored but not
processed → catch up escalation steps that fell due while we were down → jobs → READY.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor as Pool
from datetime import datetime, timedelta, timezone

import sdnotify
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from monitor.alerts.handoff import send_handoffs
from monitor.alerts.outbox import deliver_due
from monitor.app import App, build, rule_specs, setup_logging
from monitor.clock import Clock, SystemClock
from monitor.config import Config, ConfigError, expand_rule_paths, load_rules
from monitor.matching.matcher import Matcher
from monitor.sources.http import make_client
from monitor.sources import health
from monitor.sources.poll import Poller
from monitor.store.db import safe_url

log = logging.getLogger(__name__)


class Daemon:
    def __init__(self, cfg: Config, clock: Clock | None = None):
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.stop_event = threading.Event()
        self.reload_requested = threading.Event()
        self.notifier = sdnotify.SystemdNotifier()
        self.last_tick = time.monotonic()
        self.last_handoff_check = self.clock.now()
        self.app: App | None = None
        self.demo = None

    def start(self) -> None:
        started = time.monotonic()
        cfg = self.cfg
        if cfg.main.demo is not None:
            from monitor.demo import DemoServer

            self.demo = DemoServer(cfg)
            self.demo.start()
        self.app = app = build(cfg, self.clock)
        log.info("数据库：%s", safe_url(cfg.database_url()))
        app.pipeline.matcher.segmenter.initialize()
        self.client = make_client(cfg.main.http)
        self.poller = Poller(app.sessions, self.client, cfg.main.http, self.clock, random.Random())
        self.poller.register(cfg.main.source)
        caught_up = app.pipeline.process_pending()
        app.pipeline.record_replies()
        fired = app.pipeline.tick()
        if caught_up or fired:
            log.info("启动补处理：帖文 %d 条，到期提醒/升级 %d 条", caught_up, fired)

        main = cfg.main
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(3), "watchdog": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        self.scheduler.add_job(self.poll_job, "interval", seconds=main.daemon.poll_check.total_seconds(), id="poll", next_run_time=self._soon())
        self.scheduler.add_job(self.tick_job, "interval", seconds=main.escalation.tick.total_seconds(), id="tick", next_run_time=self._soon())
        self.rules_signature = self._rules_signature()
        self.scheduler.add_job(self.rules_job, "interval", seconds=2, id="rules")
        self.scheduler.add_job(self.deliver_job, "interval", seconds=main.alerts.deliver_every.total_seconds(), id="deliver", next_run_time=self._soon())
        if main.report.enabled:
            from monitor.reports.schedule import Reporter

            self.reporter = Reporter(cfg, app.sessions, app.channels, self.clock)
            self.scheduler.add_job(self.reporter.run_due, "interval", seconds=60, id="report", next_run_time=self._soon())
        watchdog_usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        if watchdog_usec:
            self.scheduler.add_job(self.watchdog_job, "interval", seconds=max(watchdog_usec / 2e6, 1), id="watchdog", executor="watchdog")
        self.scheduler.start()
        self.notifier.notify("READY=1")
        self.notifier.notify(f"STATUS=运行中：{len(main.source)} 个来源，{len(cfg.rules)} 条规则")
        log.info("监测已启动：%d 个来源，%d 条规则，用时 %.2f 秒", len(main.source), len(cfg.rules), time.monotonic() - started)

    @staticmethod
    def _soon() -> datetime:
        # APScheduler runs on real time whatever clock the monitor is given.
        return datetime.now(timezone.utc) + timedelta(milliseconds=200)

    # ---- jobs ----------------------------------------------------------------------

    def poll_job(self) -> None:
        due = self.poller.due(self.cfg.main.source)
        if due:
            with Pool(max_workers=min(self.cfg.main.daemon.workers, len(due))) as pool:
                list(pool.map(self.poller.poll, due))
        self.app.pipeline.process_pending()
        self.app.pipeline.record_replies()
        self.app.pipeline.tick()
        with self.app.sessions.begin() as session:
            health.check(session, self.cfg.main, self.app.channels, self.clock.now())

    def rules_job(self) -> None:
        """Reload the watchword rules on SIGHUP or when a rule file changes."""
        signature = self._rules_signature()
        if not self.reload_requested.is_set() and signature == self.rules_signature:
            return
        self.reload_requested.clear()
        self.rules_signature = signature
        self.reload_rules()

    def _rules_signature(self) -> tuple:
        names = self.cfg.main.watchwords if isinstance(self.cfg.main.watchwords, list) else [self.cfg.main.watchwords]
        paths = expand_rule_paths([self.cfg.resolve(n) for n in names])
        out = []
        for path in paths:
            try:
                st = path.stat()
                out.append((str(path), st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((str(path), None, None))
        return tuple(out)

    def reload_rules(self) -> bool:
        names = self.cfg.main.watchwords if isinstance(self.cfg.main.watchwords, list) else [self.cfg.main.watchwords]
        paths = expand_rule_paths([self.cfg.resolve(n) for n in names])
        try:
            rules = load_rules(paths)
            if not rules:
                raise ConfigError([f"{', '.join(map(str, paths))}: 没有任何 [[rule]]"])
        except ConfigError as e:
            log.error("规则文件有误，继续使用原有的 %d 条规则：%s", len(self.cfg.rules), "；".join(e.problems))
            return False
        matcher = Matcher(rule_specs(rules), cache_dir=self.cfg.state_dir / "jieba")
        matcher.segmenter.initialize()  # the slow part, before taking the pipeline lock
        before = {r.name: r for r in self.cfg.rules}
        after = {r.name: r for r in rules}
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        changed = sorted(n for n in set(after) & set(before) if after[n] != before[n])
        self.app.pipeline.replace_matcher(matcher)
        self.cfg.rules = rules
        log.info("规则已重新加载：%d 条（新增 %s；删除 %s；修改 %s）", len(rules),
                 "、".join(added) or "无", "、".join(removed) or "无", "、".join(changed) or "无")
        return True

    def tick_job(self) -> None:
        self.app.pipeline.tick()
        now = self.clock.now()
        # Shift starts within the last few ticks: a digest missed by hours would only confuse.
        after = max(self.last_handoff_check, now - self.cfg.main.escalation.tick * 20)
        with self.app.sessions.begin() as session:
            send_handoffs(session, self.cfg.main, self.app.channels, after, now)
        self.last_handoff_check = now
        self.last_tick = time.monotonic()

    def deliver_job(self) -> None:
        main = self.cfg.main
        deliver_due(self.app.sessions, self.app.channels, self.clock, main.alerts, ops_tags=tuple(main.health.tags or main.tier[0].tags))

    def watchdog_job(self) -> None:
        # Ping only while escalation ticks happen: a wedged scheduler must get us restarted.
        stale = self.cfg.main.escalation.tick.total_seconds() * 3 + 30
        if time.monotonic() - self.last_tick < stale:
            self.notifier.notify("WATCHDOG=1")
        else:
            log.error("升级检查已 %.0f 秒未运行，停止向 systemd 报活", time.monotonic() - self.last_tick)

    # ---- lifecycle -----------------------------------------------------------------

    def stop(self) -> None:
        self.notifier.notify("STOPPING=1")
        log.info("正在停止……")
        scheduler = getattr(self, "scheduler", None)
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=True)
        if getattr(self, "client", None) is not None:
            self.client.close()
        if self.demo is not None:
            self.demo.stop()
        if self.app is not None:
            self.app.engine.dispose()
        log.info("已停止")

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
