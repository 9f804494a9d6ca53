"""What an operator watches: Prometheus metrics at `[metrics] listen`, with /healthz and /readyz.

Two kinds of figures:
  counted   what this instance did: polls by outcome, their duration and lag past the
            scheduled time, posts stored and processed, matches by rule, tick durations.
            Counted where it happens (cheap: a lock and an add), served only if configured.
  read      how things stand for everyone sharing the store, read at each scrape: open
            incidents by severity, clocks due and overdue, alerts by delivery state, sources
            by health, the oldest post waiting to be processed. Several instances on one
            PostgreSQL all report the same values here (use max(), not sum(), across them).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.clock import Clock

log = logging.getLogger(__name__)

disable_created_metrics()  # *_created series double the page and no dashboard here reads them
REGISTRY = CollectorRegistry(auto_describe=True)

POLLS = Counter("monitor_polls", "来源轮询次数，按结果（new/not_modified/unchanged/failed/throttled）", ["outcome"], registry=REGISTRY)
POLL_SECONDS = Histogram("monitor_poll_duration_seconds", "一次轮询的用时（抓取、解析、保存）", registry=REGISTRY,
                         buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
POLL_LAG = Histogram("monitor_poll_lag_seconds", "轮询开始时比计划时间（已含随机抖动）晚了多少秒", registry=REGISTRY,
                     buckets=(0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 900))
POSTS_STORED = Counter("monitor_posts_stored", "新保存的帖文", registry=REGISTRY)
POSTS_PROCESSED = Counter("monitor_posts_processed", "已匹配处理的帖文", registry=REGISTRY)
MATCHES = Counter("monitor_matches", "命中规则的次数，按规则", ["rule"], registry=REGISTRY)
TICK_SECONDS = Histogram("monitor_tick_duration_seconds", "一次升级检查（到期提醒、升级）的用时", registry=REGISTRY,
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


class StoreFigures:
    """The `read` figures, one set of GROUP BY queries per scrape (each on an index)."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock):
        self.sessions = sessions
        self.clock = clock

    def describe(self):
        return []  # figures come from the store: nothing to describe before the first scrape

    def collect(self):
        from monitor.store.models import Incident, Outbox, Post, ResponseClock, Source

        up = GaugeMetricFamily("monitor_store_up", "数据库可读（1）或不可读（0）")
        try:
            now = self.clock.now()
            with self.sessions() as s:
                incidents = s.execute(select(Incident.severity, Incident.state, func.count())
                                      .where(Incident.state != "closed").group_by(Incident.severity, Incident.state)).all()
                unmet = (select(ResponseClock.name, func.count()).join(Incident, Incident.id == ResponseClock.incident_id)
                         .where(ResponseClock.active.is_(True), ResponseClock.met_at.is_(None), Incident.state != "closed")
                         .group_by(ResponseClock.name))
                clocks = [(name, "overdue", n) for name, n in s.execute(unmet.where(ResponseClock.due_at <= now))]
                clocks += [(name, "due", n) for name, n in s.execute(unmet.where(ResponseClock.due_at > now))]
                outbox = s.execute(select(Outbox.state, func.count()).group_by(Outbox.state)).all()
                sources = s.execute(select(Source.health_state, func.count()).group_by(Source.health_state)).all()
                oldest = s.scalar(select(func.min(Post.fetched_at)).where(Post.processed_at.is_(None)))
        except Exception as e:  # a scrape never fails because the store does; it says so
            log.warning("指标：读取数据库失败（%s）", type(e).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        g = GaugeMetricFamily("monitor_open_incidents", "未关闭的事件，按级别与状态", labels=["severity", "state"])
        for severity, state, n in incidents:
            g.add_metric([severity or "", state], n)
        yield g
        g = GaugeMetricFamily("monitor_clocks", "未完成的回应时限，按时限与是否已超时（state=due|overdue）", labels=["clock", "state"])
        for name, state, n in clocks:
            g.add_metric([name, state], n)
        yield g
        g = GaugeMetricFamily("monitor_alerts", "告警投递记录，按状态", labels=["state"])
        for state, n in outbox:
            g.add_metric([state], n)
        yield g
        g = GaugeMetricFamily("monitor_sources", "来源，按健康状态（ok/failing/quiet）", labels=["health"])
        for state, n in sources:
            g.add_metric([state], n)
        yield g
        g = GaugeMetricFamily("monitor_processing_lag_seconds", "最早一条待处理帖文已等待的秒数（0：没有待处理的）")
        g.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        yield g


class _Quiet(WSGIRequestHandler):
    def log_message(self, *_args) -> None:  # a scrape every 15 s is not news
        pass


class MetricsServer:
    """/metrics, /healthz (the process is alive and its loops turn) and /readyz (started, and
    the store answers), on a thread of its own.

    alive and ready return None when all is well, else the reason in Chinese (served with 503)."""

    def __init__(self, host: str, port: int, sessions: sessionmaker[Session], clock: Clock,
                 alive: Callable[[], str | None], ready: Callable[[], str | None]):
        registry = CollectorRegistry(auto_describe=True)
        registry.register(_Counted())
        registry.register(StoreFigures(sessions, clock))
        metrics = make_wsgi_app(registry)
        checks = {"/healthz": alive, "/readyz": ready}

        def app(environ, start_response):
            path = environ.get("PATH_INFO", "")
            if path in checks:
                problem = checks[path]()
                body = ("正常\n" if problem is None else f"{problem}\n").encode()
                start_response("200 OK" if problem is None else "503 Service Unavailable",
                               [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
                return [body]
            if path in ("/metrics", "/"):
                return metrics(environ, start_response)
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return ["没有这个地址：/metrics、/healthz、/readyz\n".encode()]

        self.httpd = make_server(host, port, app, ThreadingWSGIServer, handler_class=_Quiet)
        self.host, self.port = host, self.httpd.server_port
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Counted:
    """This instance's counters, served beside the store's figures."""

    def collect(self):
        yield from REGISTRY.collect()
