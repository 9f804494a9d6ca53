"""Retention: old posts go, what an incident holds stays; and the SQLite online backup."""

import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from monitor.app import build
from monitor.cli import main
from monitor.clock import FakeClock, SystemClock
from monitor.config import load
from monitor.sources import RawPost
from monitor.store import retention
from monitor.store.models import IncidentPost, Match, Post
from monitor.store.posts import source_row, store_posts

from .conftest import utc, write_config


def raw(i: int, title: str, published=None) -> RawPost:
    return RawPost(external_id=f"p{i}", url=None, title=title, body="", author=None, published_at=published)


def seeded(tmp_path, clock: FakeClock, extra: str = ""):
    """Posts fetched 200 days ago and now; one old post opened an incident, one old one is unprocessed."""
    path = write_config(tmp_path / "cfg", extra=extra)
    app = build(load(path), clock, with_channels=False)
    now = clock.now()
    with app.sessions.begin() as s:
        feed = source_row(s, "f", "http://127.0.0.1:9/f", "feed").id
    old = now - timedelta(days=200)
    with app.sessions.begin() as s:
        store_posts(s, feed, [raw(1, "开发区化工厂爆炸"), raw(2, "市民留言"), raw(3, "又一条留言")], old)
    clock.set(old + timedelta(minutes=1))
    app.pipeline.process_pending()
    with app.sessions.begin() as s:
        store_posts(s, feed, [raw(4, "尚未处理的旧帖")], old)
    clock.set(now)
    with app.sessions.begin() as s:
        store_posts(s, feed, [raw(5, "今天的留言"), raw(6, "今天又一起爆炸")], now)
    return path, app, feed


def titles(app) -> set[str]:
    with app.sessions() as s:
        return set(s.scalars(select(Post.title)))


def test_prune_keeps_incident_posts_unprocessed_and_recent_ones_and_their_matches(tmp_path):
    clock = FakeClock(utc(2026, 11, 20, 2))
    _, app, _ = seeded(tmp_path, clock)
    before = clock.now() - timedelta(days=180)
    assert retention.count(app.sessions, before) == 2
    assert retention.prune(app.sessions, before) == 2
    assert titles(app) == {"开发区化工厂爆炸", "尚未处理的旧帖", "今天的留言", "今天又一起爆炸"}
    with app.sessions() as s:
        held = s.scalar(select(Post.id).where(Post.title == "开发区化工厂爆炸"))
        assert s.scalar(select(func.count()).select_from(IncidentPost).where(IncidentPost.post_id == held)) == 1
        assert s.scalar(select(func.count()).select_from(Match)) == 1  # the incident post's
    assert retention.prune(app.sessions, before) == 0
    app.engine.dispose()


def test_prune_goes_in_batches_and_stops_when_asked(tmp_path, monkeypatch):
    clock = FakeClock(utc(2026, 11, 20, 2))
    _, app, feed = seeded(tmp_path, clock)
    with app.sessions.begin() as s:
        store_posts(s, feed, [raw(100 + i, f"旧留言{i}") for i in range(25)], clock.now() - timedelta(days=300))
    app.pipeline.process_pending()
    monkeypatch.setattr(retention, "BATCH", 10)
    before = clock.now() - timedelta(days=180)
    assert retention.prune(app.sessions, before, stop=lambda: True) == 10  # one batch, then the stop flag
    assert retention.prune(app.sessions, before, most=5) == 5
    assert retention.prune(app.sessions, before) == 13  # 25 + the seeded 2 + the old one processed just now, less 15
    app.engine.dispose()


def test_a_post_published_before_the_retention_age_is_not_stored_again(tmp_path):
    clock = FakeClock(utc(2026, 11, 20, 2))
    path = write_config(tmp_path / "cfg")
    app = build(load(path), clock, with_channels=False)
    now = clock.now()
    with app.sessions.begin() as s:
        feed = source_row(s, "f", "http://127.0.0.1:9/f", "feed").id
        forget = now - timedelta(days=180)
        n = store_posts(s, feed, [raw(1, "一年前的帖", now - timedelta(days=365)), raw(2, "昨天的帖", now - timedelta(days=1)),
                                  raw(3, "没有日期的帖")], now, forget_before=forget)
    assert n == 2 and titles(app) == {"昨天的帖", "没有日期的帖"}
    app.engine.dispose()


def test_retention_config_is_checked():
    from monitor.config import RetentionConfig

    assert RetentionConfig(posts="180d").posts == timedelta(days=180)
    with pytest.raises(ValueError, match="至少为 1 天"):
        RetentionConfig(posts="2h")


def test_db_prune_and_backup_from_the_command_line(tmp_path, capsys):
    clock = FakeClock(SystemClock().now())
    path, app, _ = seeded(tmp_path, clock, extra='[retention]\nposts = "180d"\n')
    app.engine.dispose()
    assert main(["db", "prune", "--dry-run", "--config", str(path)]) == 0
    assert "可清理 2 条帖文" in capsys.readouterr().out
    assert main(["db", "prune", "--config", str(path)]) == 0
    assert "已清理 2 条帖文" in capsys.readouterr().out
    assert main(["db", "prune", "--older-than", "1d", "--config", str(path)]) == 0
    assert "已清理 0 条帖文" in capsys.readouterr().out

    target = tmp_path / "backup.db"
    assert main(["db", "backup", str(target), "--config", str(path)]) == 0
    assert f"已备份到 {target}" in capsys.readouterr().out
    copy = sqlite3.connect(target)
    assert copy.execute("select count(*) from posts").fetchone()[0] == 4
    assert copy.execute("select count(*) from incidents").fetchone()[0] >= 1
    copy.close()
    with pytest.raises(SystemExit, match="已存在"):
        main(["db", "backup", str(target), "--config", str(path)])


def test_backup_of_postgresql_points_to_pg_dump(tmp_path):
    import os

    url = os.environ.get("MONITOR_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("MONITOR_TEST_POSTGRES_URL not set (PostgreSQL at 127.0.0.1:5432)")
    path = write_config(tmp_path / "cfg", database_url=url)
    with pytest.raises(SystemExit, match="pg_dump"):
        main(["db", "backup", str(tmp_path / "x.dump"), "--config", str(path)])
