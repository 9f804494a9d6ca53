"""The polling engine: due sources are fed to a persistent pool of workers, and each poll's
posts are handed on the moment that poll finishes. No poll waits for another, so a source
that drips one byte a second, or never answers, holds one worker and nothing else.

Workers are daemon threads: at shutdown one stuck in a slow read is left behind rather than
waited for. That loses nothing, because a poll writes its posts and its source's new state
in one transaction; a poll cut short is simply made again at the next start.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

from monitor.config import SourceConfig
from monitor.sources.poll import Poller, PollResult
from monitor.store.faults import DbHealth, is_transient

log = logging.getLogger(__name__)

DB_RETRY = 10.0  # seconds before a source whose poll met a database fault is tried again


class PollEngine:
    def __init__(self, poller: Poller, sources: list[SourceConfig], workers: int, db: DbHealth,
                 on_done: Callable[[PollResult], None] = lambda r: None):
        self.poller = poller
        self.sources = list(sources)
        self.workers = workers
        self.db = db
        self.on_done = on_done
        self._queue: queue.Queue[SourceConfig | None] = queue.Queue()
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._not_before: dict[str, float] = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, name=f"poll-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def set_sources(self, sources: list[SourceConfig]) -> None:
        with self._lock:
            self.sources = list(sources)

    def in_flight(self) -> set[str]:
        with self._lock:
            return set(self._in_flight)

    def dispatch(self) -> int:
        """Hand due sources to free workers, the longest overdue first; returns how many."""
        if self._stop.is_set():
            return 0
        with self._lock:
            busy = set(self._in_flight)
            now = time.monotonic()
            waiting = {n for n, t in self._not_before.items() if t > now}
            sources = self.sources
        free = self.workers - len(busy)
        if free <= 0:
            return 0
        due = self.poller.due(sources, limit=free, exclude=busy | waiting)
        with self._lock:
            for cfg in due:
                self._in_flight.add(cfg.name)
        for cfg in due:
            self._queue.put(cfg)
        return len(due)

    def _work(self) -> None:
        while not self._stop.is_set():
            cfg = self._queue.get()
            if cfg is None:
                return
            try:
                result = self.poller.poll(cfg)
            except Exception as e:
                if is_transient(e):
                    self.db.failed(e, f"保存来源「{cfg.name}」的抓取结果")
                    with self._lock:
                        self._not_before[cfg.name] = time.monotonic() + DB_RETRY
                else:  # Poller.poll turns the source's own errors into results; this is ours
                    log.exception("来源「%s」轮询出现意外错误", cfg.name)
                continue
            else:
                self.db.ok()
                try:
                    self.on_done(result)
                except Exception:
                    log.exception("处理来源「%s」的抓取结果时出错", cfg.name)
            finally:
                with self._lock:
                    self._in_flight.discard(cfg.name)

    def stop(self, timeout: float) -> list[str]:
        """Stop taking work; wait up to `timeout` s for polls under way. Returns the sources
        still being read when the time ran out (left behind; they lose nothing)."""
        self._stop.set()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return sorted(self.in_flight())
