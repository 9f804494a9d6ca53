"""Real components for tests: HTTP servers on 127.0.0.1, SQLite files, apprise receivers."""

from __future__ import annotations

import gzip as gzip_mod
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from monitor import config as config_mod

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MONITOR_SHARED_DATA", REPO.parent / "shared" / "data"))
FIXTURES = Path(__file__).parent / "fixtures"


def shared(relative: str) -> Path:
    """A file of ../shared/data, or skip: those files are not ours to ship."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared data not available: {path} (set MONITOR_SHARED_DATA)")
    return path


# ---- a programmable HTTP server ------------------------------------------------------


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    gzip: bool = False
    delay: float = 0.0
    redirect_to: str | None = None
    not_modified_headers: dict = field(default_factory=dict)  # sent with a 304 (new validators, Cache-Control)


class Server:
    def __init__(self):
        self.routes: dict[str, Route] = {}
        self.requests: list[dict] = []
        self.posts: list[dict] = []
        self.fail_posts = 0
        self.on_post = None  # called with the payload before answering: a hook to act mid-delivery
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                with server.lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers), "at": time.monotonic()})
                route = server.routes.get(self.path)
                if route is None:
                    return self._send(404, b"not found")
                if route.delay:
                    time.sleep(route.delay)
                if route.redirect_to:
                    return self._send(302, b"", {"Location": route.redirect_to})
                if route.etag and self.headers.get("If-None-Match") == route.etag:
                    return self._send(304, b"", route.not_modified_headers)
                if route.last_modified and self.headers.get("If-Modified-Since") == route.last_modified:
                    return self._send(304, b"", route.not_modified_headers)
                headers = dict(route.headers)
                if route.etag:
                    headers["ETag"] = route.etag
                if route.last_modified:
                    headers["Last-Modified"] = route.last_modified
                body = route.body
                if route.gzip:
                    body = gzip_mod.compress(body)
                    headers["Content-Encoding"] = "gzip"
                self._send(route.status, body, headers)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                route = server.routes.get(self.path)
                if route is not None:  # a board API answering POST
                    with server.lock:
                        server.requests.append({"path": self.path, "headers": dict(self.headers), "at": time.monotonic(), "body": raw})
                    return self._send(route.status, route.body, route.headers)
                with server.lock:
                    failing = server.fail_posts > 0
                    if failing:
                        server.fail_posts -= 1
                if failing:
                    return self._send(500, b"down")
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = {"raw": raw.decode("utf-8", "replace")}
                with server.lock:
                    server.posts.append({"path": self.path, "payload": payload})
                if server.on_post is not None:
                    server.on_post(payload)
                self._send(200, b"ok")

            def _send(self, status, body, headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def titles(self) -> list[str]:
        with self.lock:
            return [p["payload"].get("title", "") for p in self.posts]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def receiver():
    """A local webhook that apprise json:// posts to."""
    s = Server()
    yield s
    s.close()


# ---- feeds ---------------------------------------------------------------------------


def rss(items: list[dict], title: str = "测试订阅源") -> bytes:
    from email.utils import format_datetime
    from html import escape

    parts = ['<?xml version="1.0" encoding="utf-8"?>', '<rss version="2.0"><channel>', f"<title>{escape(title)}</title>"]
    for it in items:
        pub = it.get("published")
        parts.append(
            "<item>"
            + (f"<guid>{escape(it['id'])}</guid>" if it.get("id") else "")
            + f"<title>{escape(it.get('title', ''))}</title>"
            + (f"<link>{escape(it['link'])}</link>" if it.get("link") else "")
            + f"<description>{escape(it.get('body', ''))}</description>"
            + (f"<pubDate>{format_datetime(pub)}</pubDate>" if pub else "")
            + "</item>"
        )
    parts.append("</channel></rss>")
    return "\n".join(parts).encode("utf-8")


# ---- configuration -------------------------------------------------------------------

WATCHWORDS = """
[[rule]]
name = "危化品爆炸"
terms = ["爆炸", "爆燃"]
severity = "重大"
category = "安全生产"
department = "应急管理局"

[[rule]]
name = "黑臭水体"
terms = ["黑臭", "发黑发臭"]
severity = "一般"
category = "环境保护"
department = "生态环境局"
"""


def write_config(
    directory: Path,
    *,
    receiver_url: str | None = None,
    sources: list[tuple[str, str]] = (),
    extra: str = "",
    watchwords: str = WATCHWORDS,
    database_url: str | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "watchwords.toml").write_text(watchwords, encoding="utf-8")
    target = receiver_url or "http://127.0.0.1:9/unused"
    (directory / "apprise.yml").write_text(
        "version: 1\nurls:\n  - " + target.replace("http://", "json://") + ":\n      tag: duty, lead, leader\n",
        encoding="utf-8",
    )
    lines = [
        'watchwords = "watchwords.toml"',
        "[database]",
        f'url = "{database_url or "sqlite:///" + str(directory / "monitor.db")}"',
        "[daemon]",
        f'state_dir = "{directory / "state"}"',
        'poll_check = "1s"',
        "[alerts]",
        'apprise_config = "apprise.yml"',
        'retry_base = "10s"',
        'deliver_every = "1s"',
        "[escalation]",
        'tick = "1s"',
    ]
    # extra TOML may reopen [escalation]/[alerts]; keep it as complete tables appended last
    text = "\n".join(lines) + "\n"
    for name, url in sources:
        text += f'\n[[source]]\nname = "{name}"\nurl = "{url}"\ninterval = "1m"\njitter = 0\n'
    if extra:
        text = _merge_tables(text, extra)
    path = directory / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _merge_tables(text: str, extra: str) -> str:
    """Put keys of extra's [table] sections into the same tables of text (TOML forbids repeats)."""
    import re

    current = None
    additions: dict[str, list[str]] = {}
    tail: list[str] = []
    for line in extra.strip().splitlines():
        m = re.match(r"^\[([a-z_]+)\]\s*$", line.strip())
        if m:
            current = m.group(1)
            continue
        if current is None or line.strip().startswith("[["):
            current = None
            tail.append(line)
        else:
            additions.setdefault(current, []).append(line)
    def key_of(line: str) -> str | None:
        m = re.match(r"^\s*([A-Za-z0-9_\-]+)\s*=", line)
        return m.group(1) if m else None

    out = []
    table = None
    for line in text.splitlines():
        m = re.match(r"^\[([a-z_]+)\]\s*$", line.strip())
        if m:
            table = m.group(1)
        elif line.strip().startswith("[["):
            table = None
        # a key the extra sets again replaces the default written above
        if table in additions and key_of(line) in {key_of(a) for a in additions[table]}:
            continue
        out.append(line)
        if m and m.group(1) in additions:
            out.extend(additions[m.group(1)])
    written = {t for t in re.findall(r"^\[([a-z_]+)\]\s*$", text, re.M)}
    additions = {t: keys for t, keys in additions.items() if t not in written}
    for table, keys in additions.items():
        out.append(f"[{table}]")
        out.extend(keys)
    out.extend(tail)
    return "\n".join(out) + "\n"


PG_ENV = "MONITOR_TEST_POSTGRES_URL"


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for the test, dropped after it (skips without the server)."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL not configured: set {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    name = f"monitor_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The test once on a SQLite file and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def make_config(tmp_path):
    def make(**kwargs) -> config_mod.Config:
        return config_mod.load(write_config(tmp_path / "cfg", **kwargs))

    return make


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


class Mailbox:
    """A local SMTP server's inbox (aiosmtpd): what apprise's mailto:// really sent."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        import email

        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def parts(self, index: int = -1) -> dict[str, str]:
        """The text parts of a message by content type, decoded."""
        return {p.get_content_type(): p.get_payload(decode=True).decode(p.get_content_charset() or "utf-8")
                for p in self.messages[index].walk() if p.get_content_maintype() == "text"}

    def subjects(self):
        from email.header import decode_header, make_header

        return [str(make_header(decode_header(m["Subject"]))) for m in self.messages]


@pytest.fixture
def smtp():
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


class PaceTime:
    """Monotonic time and sleep for politeness (`HostGate`): a sleep moves time on at once, and
    each request start is recorded with the time and how many were under way, so spacing is
    asserted exactly instead of timed."""

    def __init__(self):
        self._lock = threading.Lock()
        self.now = 1000.0
        self.slept: list[float] = []
        self.starts: list[float] = []
        self.peak = self._active = 0

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
            self.slept.append(seconds)

    def gate(self, http):
        """A HostGate on this time whose slots record their starts."""
        from contextlib import contextmanager

        from monitor.sources.polite import HostGate

        gate = HostGate(http, monotonic=self.monotonic, sleep=self.sleep)
        slot = gate.slot

        @contextmanager
        def recorded(host):
            with slot(host):
                with self._lock:
                    self.starts.append(self.now)
                    self._active += 1
                    self.peak = max(self.peak, self._active)
                try:
                    yield
                finally:
                    with self._lock:
                        self._active -= 1

        gate.slot = recorded
        return gate


# ---- daemons and replay input -----------------------------------------------------------

def wait_for(condition, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def spawn(cfg: Path, env_extra=None) -> subprocess.Popen:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def scalar(db: Path, query: str):
    """A value from the daemon's database; None while it is still being created."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as c:
            return c.execute(text(query)).scalar()
    except OperationalError:
        return None
    finally:
        engine.dispose()


# Replay input: two posts about one explosion and one that matches nothing.
POSTS = [
    {"source": "weibo", "id": "p1", "url": "https://weibo.example/p1", "title": "化工厂爆炸", "body": "开发区化工厂发生爆炸，浓烟滚滚", "author": "网友甲", "published_at": "2026-11-20T08:00:00+08:00"},
    {"source": "weibo", "id": "p2", "url": "https://weibo.example/p2", "title": "", "body": "爆燃现场周边已疏散", "author": "网友乙", "published_at": "2026-11-20T08:30:00+08:00"},
    {"source": "12345", "id": "q1", "url": "https://12345.example/q1", "title": "南京市长江大桥堵车", "body": "早高峰", "author": "市民", "published_at": "2026-11-20T09:00:00+08:00"},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _root_logging():
    """A test that sets up the daemon's logging binds it to that test's captured stderr; the
    next tests must not log into a closed stream ("--- Logging error ---")."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
