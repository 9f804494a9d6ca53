"""Metrics and health as an operator's Prometheus and service manager see them: a real daemon
process, scraped over HTTP."""

import signal
import socket
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Route, rss, spawn, wait_for, write_config
from .test_daemon import feed_items


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(base: str) -> dict:
    text = httpx.get(base + "/metrics", timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def value(figures: dict, name: str, **labels) -> float:
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_polls_posts_matches_and_read_the_store(tmp_path, server, receiver):
    server.routes["/f"] = Route(rss(feed_items(10)))
    server.routes["/down"] = Route(b"oops", status=500)
    port = free_port()
    cfg = write_config(tmp_path / "cfg", receiver_url=receiver.url("/hook"),
                       sources=[("f", server.url("/f")), ("down", server.url("/down"))],
                       extra=f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    base = f"http://127.0.0.1:{port}"
    proc = spawn(cfg)
    try:
        wait_for(lambda: _get(base + "/readyz") == 200, what="/readyz to say ready")
        assert httpx.get(base + "/healthz", timeout=5).text == "正常\n"
        wait_for(lambda: value(scrape(base), "monitor_open_incidents", severity="重大", state="open") >= 1,
                 what="the explosion's incident in the metrics")
        figures = scrape(base)
        assert value(figures, "monitor_polls_total", outcome="new") >= 1
        wait_for(lambda: value(scrape(base), "monitor_polls_total", outcome="failed") >= 1, what="the failing source's poll")
        assert value(figures, "monitor_posts_stored_total") == 10
        wait_for(lambda: value(scrape(base), "monitor_posts_processed_total") == 10, what="all ten processed")
        figures = scrape(base)
        assert value(figures, "monitor_matches_total", rule="危化品爆炸") == 2  # items 0 and 5
        assert value(figures, "monitor_store_up") == 1
        # the explosion's clocks run: none overdue yet
        assert value(figures, "monitor_clocks", clock="发布权威信息", state="due") >= 1
        assert value(figures, "monitor_clocks", clock="发布权威信息", state="overdue") == 0
        assert value(figures, "monitor_poll_duration_seconds_count") >= 2
        assert value(figures, "monitor_tick_duration_seconds_count") >= 1
        wait_for(lambda: value(scrape(base), "monitor_alerts", state="sent") >= 1, what="the alert sent")
        assert httpx.get(base + "/nothing", timeout=5).status_code == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    err = proc.stderr.read().decode()
    assert f"指标：http://127.0.0.1:{port}/metrics" in err


def test_a_taken_metrics_port_is_logged_and_monitoring_goes_on(tmp_path, server, receiver):
    server.routes["/f"] = Route(rss(feed_items(1)))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = write_config(tmp_path / "cfg", receiver_url=receiver.url("/hook"), sources=[("f", server.url("/f"))],
                           extra=f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
        proc = spawn(cfg)
        try:
            wait_for(lambda: receiver.titles(), what="the opening alert despite the taken port")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            proc.kill()
    assert "指标服务无法在" in proc.stderr.read().decode()


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_readyz_says_why_not_ready(tmp_path):
    from monitor.clock import SystemClock
    from monitor.daemon import Daemon
    from monitor import config as config_mod

    cfg = config_mod.load(write_config(tmp_path / "cfg"))
    daemon = Daemon(cfg, SystemClock())
    assert daemon.not_ready() == "正在启动（补处理积压的帖文与提醒）"
    daemon.ready = True
    assert daemon.not_ready() is None
    daemon.last_tick = time.monotonic() - 10_000
    assert daemon.stuck().startswith("升级检查已") and daemon.not_ready() == daemon.stuck()
    daemon.stop_event.set()
    assert daemon.not_ready() == "正在停止"


def test_the_grafana_dashboard_reads_only_metrics_the_daemon_serves():
    """deploy/grafana-monitor.json imports into Grafana and every query names a series we export."""
    import json
    import re
    from pathlib import Path

    from monitor import metrics

    dashboard = json.loads((Path(__file__).parents[1] / "deploy" / "grafana-monitor.json").read_text(encoding="utf-8"))
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus" and dashboard["panels"]
    served = {m.name for m in metrics.REGISTRY.collect()}
    served |= {"monitor_store_up", "monitor_open_incidents", "monitor_clocks", "monitor_alerts", "monitor_sources",
               "monitor_processing_lag_seconds"}
    source = (Path(metrics.__file__)).read_text(encoding="utf-8")
    for name in served:
        assert f'"{name}"' in source  # the store's figures are named in metrics.py too
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"\bmonitor_[a-z_]+", target["expr"]):
                base = re.sub(r"_(total|bucket|count|sum)$", "", name)
                assert base in served, (panel["title"], name)
