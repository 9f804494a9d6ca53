"""The command as a duty officer or an admin meets it."""

from monitor.cli import main

from .conftest import Route, rss, utc, write_config


def test_sources_list_shows_state_and_last_error(tmp_path, server, capsys):
    from monitor.app import build
    from monitor.clock import FakeClock
    from monitor.config import load
    from monitor.sources.http import make_client
    from monitor.sources.poll import Poller

    server.routes["/ok"] = Route(rss([{"id": "1", "title": "留言", "published": utc(2026, 11, 20)}]))
    server.routes["/bad"] = Route(b"gone", status=404)
    path = write_config(tmp_path, sources=[("好来源", server.url("/ok")), ("坏来源", server.url("/bad"))])
    cfg = load(path)
    app = build(cfg, FakeClock(utc(2026, 11, 20, 1)), with_channels=False)
    poller = Poller(app.sessions, make_client(cfg.main.http), cfg.main.http, app.clock)
    for source in cfg.main.source:
        poller.poll(source)
    app.engine.dispose()
    assert main(["sources", "list", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "好来源【订阅源】：正常；帖文 1 条；最近成功 2026-11-20 09:00" in out
    assert "坏来源【订阅源】：失败（连续 1 次）" in out and "HTTP 404" in out


def test_unreachable_database_is_one_clear_line_without_password(tmp_path, capsys):
    path = write_config(tmp_path)
    url = "postgresql+psycopg://monitor:Hunter2Secret@127.0.0.1:9/monitor"
    assert main(["incidents", "list", "--config", str(path), "--database", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("无法连接或访问数据库：") and "Hunter2Secret" not in err


def test_missing_config_file(tmp_path, capsys):
    assert main(["check-config", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "文件不存在" in capsys.readouterr().err


def test_log_lines_carry_beijing_time_and_the_zone(capsys):
    import logging

    from monitor.app import setup_logging

    setup_logging()
    record = logging.LogRecord("monitor.test", logging.INFO, __file__, 1, "来源已恢复", None, None)
    record.created, record.msecs = 1764633600.25, 250.0  # 2025-12-02 00:00:00.25 UTC
    line = logging.getLogger().handlers[0].format(record)
    assert line.startswith("2025-12-02 08:00:00,250 +08:00 INFO monitor.test: 来源已恢复")


def test_an_officer_command_never_creates_an_empty_database(tmp_path, capsys):
    from monitor.cli import main

    from .conftest import write_config

    cfg = write_config(tmp_path / "cfg")  # its database is cfg/monitor.db, which no daemon has made
    assert main(["incidents", "ack", "1", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "找不到数据库" in err and "STATE_DIRECTORY" in err and "不存在" not in err
    assert not (tmp_path / "cfg" / "monitor.db").exists()
    assert main(["rules", "dry-run", "--config", str(cfg)]) == 1  # the rule maintainers' commands neither
    assert "找不到数据库" in capsys.readouterr().err
    assert not (tmp_path / "cfg" / "monitor.db").exists()
    assert main(["db", "upgrade", "--config", str(cfg)]) == 0  # the one command that makes it
    assert main(["incidents", "ack", "1", "--config", str(cfg)]) == 1
    assert "事件 #1 不存在" in capsys.readouterr().err
