"""A console on a real port over a real SQLite file, with incidents made by the real pipeline
and alerts delivered through apprise to a local receiver; time is a FakeClock."""

from __future__ import annotations

import re
import socket
from datetime import timedelta

import httpx

from monitor.alerts.links import links_for
from monitor.alerts.outbox import deliver_due
from monitor.app import build
from monitor.clock import FakeClock
from monitor.sources import RawPost
from monitor.store.posts import source_row, store_posts
from monitor.web.context import Console
from monitor.web.server import ConsoleServer

from .conftest import utc

T0 = utc(2026, 11, 20, 0, 0)
PASSWORD = "correct-horse-9"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ConsoleWorld:
    def __init__(self, make_config, receiver, extra: str = "", start=T0):
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.cfg = make_config(receiver_url=receiver.url("/hook"),
                           extra=f'[web]\nlisten = "127.0.0.1:{port}"\nbase_url = "{self.base}"\n' + extra)
        self.clock = FakeClock(start)
        self.receiver = receiver
        self.app = build(self.cfg, self.clock)
        self.links = links_for(self.cfg, self.clock)
        with self.app.sessions.begin() as s:
            self.source_id = source_row(s, "test", "http://127.0.0.1/feed").id
        console = Console(lambda: self.cfg, self.app.sessions, self.clock, lambda: self.app.incidents,
                          lambda: self.app.pipeline.matcher, self.links)
        self.server = ConsoleServer(console)
        assert self.server.start(), "console did not start"
        self.n = 0

    def post(self, title, body="", url=None):
        self.n += 1
        raw = RawPost(f"p{self.n}", url or f"http://example/p{self.n}", title, body, None, self.clock.now())
        with self.app.sessions.begin() as s:
            store_posts(s, self.source_id, [raw], self.clock.now())
        self.app.pipeline.process_pending()

    def deliver(self) -> int:
        self.app.pipeline.tick()
        return deliver_due(self.app.sessions, self.app.channels, self.clock, self.cfg.main.alerts, links=self.links)

    def later(self, delta: timedelta) -> None:
        self.clock.set(self.clock.now() + delta)

    def user(self, name: str, role: str, password: str = PASSWORD, department: str = "") -> None:
        from monitor import accounts

        with self.app.sessions.begin() as s:
            accounts.add(s, name, role, password, self.clock.now(), department)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, follow_redirects=False, timeout=10)

    def login(self, name: str, password: str = PASSWORD) -> httpx.Client:
        c = self.client()
        r = c.post("/login", data={"name": name, "password": password, "csrf": csrf(c, "/login")})
        assert r.status_code == 303, r.text
        return c

    def ack_links(self) -> list[str]:
        return [m for p in self.receiver.posts for m in re.findall(r"http://127\.0\.0\.1:\d+/a/[\w.\-]+", p["payload"]["message"])]

    def close(self) -> None:
        self.server.stop()
        self.app.engine.dispose()


def csrf(client: httpx.Client, path: str) -> str:
    page = client.get(path, follow_redirects=True)
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
