"""Schema and databases: migrations match the models; SQLite in WAL; PostgreSQL for real."""

import json
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text

from monitor.cli import main
from monitor.store import db
from monitor.store.models import Base

from .conftest import POSTS, write_config, write_jsonl

HEAD = sorted(p.name for p in (Path(db.__file__).parent / "migrations" / "versions").glob("0*.py"))[-1][:4]


def test_migrations_match_models_and_sqlite_uses_wal(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade(engine)
    db.upgrade(engine)  # idempotent at every start
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    assert db.current_revision(engine) == HEAD
    engine.dispose()


def test_db_upgrade_cli_hides_password(tmp_path, capsys):
    cfg = write_config(tmp_path)
    assert main(["db", "upgrade", "--config", str(cfg)]) == 0
    assert HEAD in capsys.readouterr().out
    assert db.safe_url("postgresql+psycopg://u:hunter22@h/db") == "postgresql+psycopg://u:***@h/db"


def test_postgresql_migrations_and_replay(pg_url, tmp_path):
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()
    cfg = write_config(tmp_path / "cfg")
    posts = write_jsonl(tmp_path / "p.jsonl", POSTS)
    out_pg, out_lite = tmp_path / "pg.json", tmp_path / "lite.json"
    assert main(["replay", "--config", str(cfg), "--posts", str(posts), "--dry-run", "--out", str(out_pg), "--database", pg_url]) == 0
    assert main(["replay", "--config", str(cfg), "--posts", str(posts), "--dry-run", "--out", str(out_lite)]) == 0
    assert json.loads(out_pg.read_text()) == json.loads(out_lite.read_text())


def test_postgresql_ingestion_is_idempotent(pg_url):
    from monitor.clock import FakeClock
    from monitor.sources import RawPost
    from monitor.store.posts import source_row, store_posts

    from .conftest import utc

    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    now = FakeClock(utc(2026, 11, 20)).now()
    posts = [RawPost(f"id{i}", None, f"t{i}", "", None, now) for i in range(5)]
    with sessions.begin() as s:
        sid = source_row(s, "pg", "http://x").id
        assert store_posts(s, sid, posts, now) == 5
    with sessions.begin() as s:
        assert store_posts(s, sid, posts + [RawPost("id9", None, "t", "", None, now)], now) == 1
    engine.dispose()


def test_two_instances_on_one_postgresql_process_each_post_once(pg_url, tmp_path):
    """Two pipelines (as two daemons would) race over the same stored posts: every post is
    matched once (by one of them), each rule has one incident, each alert is logged once. (The unique match
    key alone already rolls back the slower one here; the advisory lock is what keeps it so
    when two instances pick different posts of one event.)"""
    import threading


    from monitor.app import build
    from monitor.clock import FakeClock
    from monitor.config import load
    from monitor.sources import RawPost
    from monitor.store.models import Incident, Match, Notification
    from monitor.store.posts import source_row, store_posts

    from .conftest import utc

    cfg = load(write_config(tmp_path / "cfg"))
    clock = FakeClock(utc(2026, 11, 20, 8))
    a = build(cfg, clock, database_url=pg_url, dry_run=True)
    b = build(cfg, clock, database_url=pg_url, dry_run=True)
    posts = [RawPost(f"p{i}", None, f"第{i}条：化工厂爆炸" if i % 3 == 0 else f"第{i}条：河道黑臭", "", None, clock.now()) for i in range(300)]
    with a.sessions.begin() as s:
        store_posts(s, source_row(s, "x", "http://x").id, posts, clock.now())
    matched = []
    for app in (a, b):
        def counting(title, body, match=app.pipeline.matcher.match):
            matched.append(title)
            return match(title, body)

        app.pipeline.matcher.match = counting
    threads = [threading.Thread(target=app.pipeline.process_pending, kwargs={"batch": 20}) for app in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a.pipeline.tick()
    b.pipeline.tick()
    with a.sessions() as s:
        assert s.scalar(select(func.count(Match.id))) == 300
        assert s.scalar(select(func.count(Incident.id))) == 2
        assert s.scalar(select(func.sum(Incident.post_count))) == 300
        assert s.scalar(select(func.count(Notification.id))) == 2
    # each post matched once between the two: they claimed different batches
    assert len(matched) == 300 and len(set(matched)) == 300
    a.engine.dispose()
    b.engine.dispose()


def _down_and_up(engine):
    """Every migration's downgrade runs, to an empty database, and upgrading again gives the
    schema the models describe."""
    from alembic import command

    config = db.alembic_config(engine)
    command.downgrade(config, "base")
    with engine.connect() as conn:
        left = set(Base.metadata.tables) & set(db_inspect(conn).get_table_names())
    assert left == set()
    db.upgrade(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    assert db.current_revision(engine) == HEAD
    # The database itself refuses a state or kind the code never writes.
    from sqlalchemy.exc import IntegrityError

    for value, ok in (("feed", True), ("rss", False)):
        try:
            with engine.begin() as conn:
                conn.execute(text("insert into sources (name, url, kind, consecutive_failures, posts_total, health_state) "
                                  f"values ('{value}', 'u', '{value}', 0, 0, 'ok')"))
            assert ok
        except IntegrityError:
            assert not ok


def db_inspect(conn):
    from sqlalchemy import inspect

    return inspect(conn)


def test_migrations_go_down_and_up_on_sqlite(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade(engine)
    _down_and_up(engine)
    engine.dispose()


def test_migrations_go_down_and_up_on_postgresql(pg_url):
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    _down_and_up(engine)
    engine.dispose()


def test_the_head_read_from_file_names_is_alembics_own():
    from alembic.script import ScriptDirectory

    engine = db.make_engine("sqlite://")
    assert db.HEAD == ScriptDirectory.from_config(db.alembic_config(engine)).get_current_head() == HEAD
    engine.dispose()


def test_instances_started_together_on_a_fresh_postgresql_all_come_up(pg_url):
    """Each start migrates; on a fresh database three at once used to leave all but one dead
    on a duplicate alembic_version row. Now they take turns under an advisory lock."""
    import threading

    engines = [db.make_engine(pg_url) for _ in range(3)]
    errors: list[BaseException] = []
    go = threading.Barrier(3)

    def start(engine):
        go.wait()
        try:
            db.upgrade(engine)
        except BaseException as e:  # noqa: BLE001 - the test reports whatever a start died of
            errors.append(e)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and all(db.current_revision(e) == HEAD for e in engines)
    for e in engines:
        e.dispose()


def test_ten_thousand_sources_register_in_a_few_statements_and_a_moved_url_resets(tmp_path):
    from sqlalchemy import event

    from monitor.store.models import Source
    from monitor.store.posts import register_sources

    engine = db.make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    wanted = [(f"来源{i}", f"http://127.0.0.1/{i}.xml", "feed") for i in range(10_000)]
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with sessions.begin() as s:
        assert register_sources(s, wanted) == 10_000
    assert len(statements) <= 3, statements[:5]  # one read, one insert (executemany)
    with sessions.begin() as s:
        row = s.scalars(select(Source).where(Source.name == "来源7")).one()
        row.etag, row.body_hash = '"v1"', "abc"
    with sessions.begin() as s:
        assert register_sources(s, [*wanted[:7], ("来源7", "http://127.0.0.1/moved.xml", "feed")]) == 0
    with sessions() as s:
        row = s.scalars(select(Source).where(Source.name == "来源7")).one()
        assert (row.url, row.etag, row.body_hash) == ("http://127.0.0.1/moved.xml", None, None)
        assert s.scalar(select(func.count(Source.id))) == 10_000
    engine.dispose()


def test_a_post_is_linked_to_an_incident_once_in_one_statement(store_url):
    """record.link inserts with ON CONFLICT DO NOTHING and says whether the row is new; it
    flushes nothing the session holds (the incident's own changes go at commit)."""
    from datetime import datetime, timezone

    from monitor.incidents.record import link
    from monitor.store.models import Incident, IncidentPost, Post, Source

    engine = db.make_engine(store_url)
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    now = datetime(2026, 11, 20, 2, tzinfo=timezone.utc)
    with sessions.begin() as s:
        source = Source(name="s", url="http://127.0.0.1/f", kind="feed")
        s.add(source)
        s.flush()
        post = Post(source_id=source.id, external_id="p1", title="化工厂爆炸", body="", fetched_at=now, published_at=now)
        incident = Incident(rule="爆炸", title="化工厂爆炸", severity="重大", state="open", started_at=now, opened_at=now,
                            last_post_at=now, terms=["爆炸"], post_count=0, false_positive=False)
        s.add_all([post, incident])
        s.flush()
        assert link(s, incident, post, now) is True
        incident.post_count += 1
        assert link(s, incident, post, now) is False
        assert incident in s.dirty  # not flushed by link
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(IncidentPost)) == 1
        assert s.scalar(select(Incident.post_count)) == 1
    engine.dispose()
