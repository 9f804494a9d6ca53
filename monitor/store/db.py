"""Engine and sessions. SQLite gets WAL and a busy timeout; anything SQLAlchemy speaks works."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from monitor import secrets

log = logging.getLogger(__name__)


def safe_url(url: str) -> str:
    """The URL as it may be shown: password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return secrets.redact(url)


def check_reachable(url: str, timeout: float = 5.0) -> str | None:
    """What `run` would meet opening this database, without creating or changing anything:
    None if it can, else why not (in Chinese, password hidden)."""
    from monitor.store.faults import describe

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database or ""
        if db in ("", ":memory:") or db.startswith("file:"):
            return None
        path = Path(db)
        if path.exists():
            return None if os.access(path, os.R_OK | os.W_OK) else f"数据库文件 {path} 不可读写（请检查权限）"
        ancestor = path.parent
        while not ancestor.exists():
            ancestor = ancestor.parent
        return None if os.access(ancestor, os.W_OK) else f"无法创建数据库文件 {path}：目录 {ancestor} 不可写"
    engine = create_engine(url, connect_args={"connect_timeout": int(timeout)} if parsed.get_backend_name() == "postgresql" else {})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as e:
        return f"无法连接数据库 {safe_url(url)}：{describe(e)}"
    finally:
        engine.dispose()
    return None


def make_engine(url: str, busy_timeout: float = 30.0) -> Engine:
    """busy_timeout: seconds a SQLite statement waits for another writer before it fails
    with "database is locked" (a transient fault: the work is retried, never lost)."""
    secrets.register_url(url, user_is_secret=False)
    parsed = make_url(url)
    kwargs: dict = {}
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": busy_timeout, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", lambda conn, _record: _sqlite_pragmas(conn, busy_timeout))
    return engine


def _sqlite_pragmas(dbapi_conn, busy_timeout: float) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the CLI read while the daemon writes; NORMAL is durable across process crashes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    cur.close()


MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision, from the file names (0014_console_accounts.py has revision '0014'; a test
# holds this to Alembic's own head). A start on a current schema never imports Alembic.
HEAD = max(p.name[:4] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
_PG_MIGRATION_LOCK = 0x6D6F6E01  # pg_advisory_lock key: "mon" + 1


def alembic_config(engine: Engine):
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def stored_revision(engine: Engine) -> str | None:
    """The schema's revision, read without Alembic (None: no schema yet)."""
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None


@contextmanager
def _migration_lock(engine: Engine):
    """Instances started together on one PostgreSQL migrate one at a time: the others wait here,
    then find the schema current (instead of dying on a duplicate alembic_version row)."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
            conn.commit()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (run at every start; a no-op when current)."""
    if stored_revision(engine) == HEAD:
        return
    from alembic import command

    with _migration_lock(engine):
        command.upgrade(alembic_config(engine), "head")


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
