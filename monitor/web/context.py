"""What the console's handlers are given: the daemon's current configuration, store, clock,
incident service and matcher (getters, since a reload swaps them), and the link signer."""

from __future__ import annotations

import threading
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.links import Links
from monitor.clock import Clock
from monitor.config import Config, WebConfig


@dataclass
class Console:
    config: Callable[[], Config]
    sessions: sessionmaker[Session]
    clock: Clock
    incidents: Callable[[], object]  # monitor.incidents.service.Incidents
    matcher: Callable[[], object]  # monitor.matching.matcher.Matcher
    links: Links

    def __post_init__(self):
        # SQLite takes one writer at a time and makes the others poll with growing sleeps (up to
        # 100 ms each): fifty officers acting at once queue here instead, in order.
        sqlite = self.sessions.kw["bind"].dialect.name == "sqlite"
        self._write_lock = threading.Lock() if sqlite else None

    def writing(self):
        return self._write_lock if self._write_lock is not None else nullcontext()

    @property
    def web(self) -> WebConfig:
        return self.config().main.web or WebConfig()
