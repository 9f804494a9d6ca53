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


def test_sources_list_at_ten_thousand_sources_summarises_filters_and_pages(tmp_path, capsys):
    from sqlalchemy import update

    from monitor.store import db
    from monitor.store.models import Source
    from monitor.store.posts import register_sources

    sources = [(f"来源{i:05d}", f"http://127.0.0.1:9/{i}.xml") for i in range(10_000)]
    path = write_config(tmp_path, sources=sources)
    engine = db.make_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    db.upgrade(engine)
    with db.session_factory(engine).begin() as s:
        register_sources(s, [(n, u, "feed") for n, u in sources[:9_990]])  # ten never polled yet
        s.execute(update(Source).where(Source.name.in_(["来源00042", "来源00043"])).values(consecutive_failures=4, last_error="HTTP 500"))
        s.execute(update(Source).where(Source.name == "来源00100").values(health_state="quiet"))
    engine.dispose()
    capsys.readouterr()
    assert main(["sources", "list", "--config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "来源 10000 个（配置中）：失败 2，沉寂 1，正常 9987，尚未抓取 10；数据库中 9990 个"
    assert out[-1].startswith("……另有 9890 个未列出")
    assert main(["sources", "list", "--failing", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "来源00042【订阅源】：失败（连续 4 次）" in out and "来源00043" in out and "来源00001【" not in out
    assert main(["sources", "list", "--quiet", "--config", str(path)]) == 0
    assert "来源00100【订阅源】：正常；沉寂" in capsys.readouterr().out
    assert main(["sources", "list", "--name", "0998", "--limit", "0", "--config", str(path)]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if "【订阅源】" in line]
    assert len(listed) == 11  # 来源00998 and 来源09980…09989
