"""Politeness per host: at most N requests at once, a minimum time between request
starts, and a pause when the host says Retry-After. Real time: this is about not
hammering somebody else's server, so it sleeps."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from datetime import timedelta

from monitor.config import HttpConfig

MAX_WAIT = 60.0  # seconds a poll may wait for its turn; longer, and it is rescheduled instead


class HostBusy(Exception):
    def __init__(self, seconds: float):
        super().__init__(f"主机要求稍后再试（约 {seconds:.0f} 秒后）")
        self.seconds = seconds


class HostGate:
    def __init__(self, cfg: HttpConfig):
        self.cfg = cfg
        self._lock = threading.Lock()
        self._slots: dict[str, threading.Semaphore] = {}
        self._next_start: dict[str, float] = {}

    def _limits(self, host: str) -> tuple[int, float]:
        override = self.cfg.hosts.get(host)
        concurrency = (override.concurrency if override and override.concurrency else None) or self.cfg.host_concurrency
        delay = (override.delay if override and override.delay is not None else None) or self.cfg.host_delay
        return concurrency, delay.total_seconds()

    @contextmanager
    def slot(self, host: str):
        concurrency, delay = self._limits(host)
        with self._lock:
            semaphore = self._slots.setdefault(host, threading.Semaphore(concurrency))
        with semaphore:
            with self._lock:  # reserve a start time, then wait for it outside the lock
                now = time.monotonic()
                start = max(now, self._next_start.get(host, 0.0))
                if start - now > MAX_WAIT:
                    raise HostBusy(start - now)
                self._next_start[host] = start + delay
            if start > now:
                time.sleep(start - now)
            yield

    def pause(self, host: str, retry_after: timedelta) -> None:
        """The host asked us to come back later: nobody starts a request to it before then."""
        with self._lock:
            until = time.monotonic() + retry_after.total_seconds()
            self._next_start[host] = max(self._next_start.get(host, 0.0), until)
