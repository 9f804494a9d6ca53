"""Politeness per host: at most N requests at once, a minimum time between request
starts, and a pause when the host says Retry-After. Real time by default: this is about
not hammering somebody else's server.

A poll waits here only briefly: when its host's next start is further off, or all of the
host's slots stay busy, it is handed back as `HostBusy` and rescheduled for then, so a
worker thread never sleeps a minute for one host while other hosts' sources are due.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from typing import Callable
from urllib.parse import urlsplit

from monitor.config import HttpConfig
from monitor.sources.http import Throttled

MAX_WAIT = 2.0  # seconds a poll may wait for its turn; longer, and it is rescheduled instead


def host_of(url: str) -> str:
    """The host politeness is kept per (urlsplit lowercases it)."""
    return urlsplit(url).hostname or ""


class HostBusy(Throttled):
    """Our own politeness says later: not the source's failure."""

    def __init__(self, seconds: float):
        super().__init__(f"主机请求间隔未到，约 {max(seconds, 1):.0f} 秒后再抓取", timedelta(seconds=seconds), server=False)
        self.seconds = seconds


class HostGate:
    def __init__(self, cfg: HttpConfig, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.cfg = cfg
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._slots: dict[str, threading.Semaphore] = {}
        self._next_start: dict[str, float] = {}

    def limits(self, host: str) -> tuple[int, float]:
        """(requests at once, seconds between starts) for this host."""
        return self._limits(host)

    def _limits(self, host: str) -> tuple[int, float]:
        override = self.cfg.hosts.get(host)
        concurrency = override.concurrency if override and override.concurrency else self.cfg.host_concurrency
        # `delay = "0s"` means no delay: a zero must not fall back to the default.
        delay = override.delay if override and override.delay is not None else self.cfg.host_delay
        return concurrency, delay.total_seconds()

    def wait_for(self, host: str) -> float:
        """Seconds until this host's next request may start (0: now)."""
        with self._lock:
            return max(0.0, self._next_start.get(host, 0.0) - self._monotonic())

    @contextmanager
    def slot(self, host: str):
        concurrency, delay = self._limits(host)
        with self._lock:
            semaphore = self._slots.setdefault(host, threading.Semaphore(concurrency))
        if not semaphore.acquire(timeout=MAX_WAIT):
            raise HostBusy(max(delay, MAX_WAIT))
        try:
            with self._lock:  # reserve a start time, then wait for it outside the lock
                now = self._monotonic()
                start = max(now, self._next_start.get(host, 0.0))
                if start - now > MAX_WAIT:
                    raise HostBusy(start - now)
                self._next_start[host] = start + delay
            if start > now:
                self._sleep(start - now)
            yield
        finally:
            semaphore.release()

    def pause(self, host: str, wait: timedelta) -> None:
        """The host asked us to come back later: nobody starts a request to it before then."""
        with self._lock:
            until = self._monotonic() + wait.total_seconds()
            self._next_start[host] = max(self._next_start.get(host, 0.0), until)
