"""The polling engine: due sources are fed to persistent workers, and each poll's posts are
handed on the moment that poll finishes. No poll waits for another.

Two lanes keep slow sources from holding up the rest:
  fast  `workers` threads. A poll here that runs past `slow_after` (a server that drips one
        byte a second, or never answers) marks its source slow, and a new fast worker takes
        the stuck one's place (at most `max_extra` at once), so the lane always has free hands.
  slow  `slow_workers` threads for sources whose last poll was slow: they can only ever
        hold up each other. A source polled quickly again goes back to the fast lane. The lane
        grows by a worker whenever a dispatch finds it full (up to `slow_max`): its polls
        mostly wait on the network, and 400 sources taking 5 s each every 5 minutes need
        several times the two workers it starts with.

Workers are daemon threads: at shutdown one stuck in a slow read is left behind rather than
waited for. That loses nothing, because a poll writes its posts and its source's new state
in one transaction; a poll cut short is simply made again at the next start.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from typing import Callable

from monitor.config import SourceConfig
from monitor.sources.poll import Poller, PollResult
from monitor.sources.polite import host_of
from monitor.store.faults import DbHealth, is_transient

log = logging.getLogger(__name__)

HOST_SLACK = 0.5  # seconds a poll may wait at its host's gate; a longer wait is scheduled instead
DB_RETRY = 10.0  # seconds before a source whose poll met a database fault is tried again
FAST, SLOW = "fast", "slow"


class PollEngine:
    def __init__(self, poller: Poller, sources: list[SourceConfig], workers: int, db: DbHealth,
                 on_done: Callable[[PollResult], None] = lambda r: None, *, slow_workers: int | None = None,
                 slow_after: float = 5.0, max_extra: int | None = None):
        self.poller = poller
        self.sources = list(sources)
        self._by_name = {s.name: s for s in self.sources}
        self._lane_lists: tuple | None = None  # see _lanes
        self.workers = workers
        self.slow_workers = slow_workers or max(2, workers // 2)
        self.slow_max = max(self.slow_workers, self.slow_limit(workers))
        self.slow_after = slow_after
        self.max_extra = workers * 4 if max_extra is None else max_extra
        self.db = db
        self.on_done = on_done
        self._queues: dict[str, queue.Queue] = {FAST: queue.Queue(), SLOW: queue.Queue()}
        self._lock = threading.Lock()
        self._in_flight: dict[str, str] = {}  # source -> lane, queued or running
        self._running: dict[threading.Thread, tuple[str, float, str]] = {}  # thread -> (source, started, lane)
        self._retired: set[threading.Thread] = set()  # stuck fast workers already replaced
        self._slow: set[str] = set()  # sources whose last poll was slow
        self._not_before: dict[str, float] = {}
        self._stop = threading.Event()
        self._dispatching = threading.Lock()
        self._timer_at: float | None = None
        self._threads: list[threading.Thread] = []
        for _ in range(workers):
            self._spawn(FAST)
        for _ in range(self.slow_workers):
            self._spawn(SLOW)

    @staticmethod
    def slow_limit(workers: int) -> int:
        return workers * 4

    @classmethod
    def capacity_for(cls, workers: int) -> int:
        """The most polls under way at once with the default lanes (what the HTTP pool must allow)."""
        return workers + max(2, workers // 2, cls.slow_limit(workers)) + workers * 4

    def _spawn(self, lane: str) -> None:
        t = threading.Thread(target=self._work, args=(lane,), name=f"poll-{lane}-{len(self._threads)}", daemon=True)
        self._threads.append(t)
        t.start()

    def set_sources(self, sources: list[SourceConfig]) -> None:
        with self._lock:
            self.sources = list(sources)
            self._by_name = {s.name: s for s in self.sources}

    def in_flight(self) -> set[str]:
        with self._lock:
            return set(self._in_flight)

    def slow_sources(self) -> set[str]:
        with self._lock:
            return set(self._slow)

    def dispatch(self) -> int:
        """Hand due sources to their lane, the longest overdue first: enough for every worker
        and one more round queued, so a worker that finishes never waits for the next check.
        Called every poll_check, and by a worker that finds its lane's queue empty."""
        if self._stop.is_set() or not self._dispatching.acquire(blocking=False):
            return 0  # another dispatch is choosing right now: it sees the same free hands
        try:
            return self._dispatch()
        finally:
            self._dispatching.release()

    def _dispatch(self) -> int:
        now = time.monotonic()
        with self._lock:
            self._rescue(now)
            busy = set(self._in_flight)
            waiting = {n for n, t in self._not_before.items() if t > now}
            slow = set(self._slow)
            free = {lane: 2 * size - sum(1 for v in self._in_flight.values() if v == lane)
                    for lane, size in ((FAST, self.workers), (SLOW, self.slow_workers))}
            sources = self.sources
        skip = busy | waiting
        take, soonest = self._polite(busy)
        fast_lane, slow_lane = self._lanes(sources, slow)
        chosen = []
        if free[FAST] > 0:
            chosen += [(c, FAST) for c in self.poller.due(fast_lane, free[FAST], skip, take)]
        if free[SLOW] > 0 and slow:
            chosen += [(c, SLOW) for c in self.poller.due(slow_lane, free[SLOW], skip, take)]
        elif slow and self.slow_workers < self.slow_max:  # the slow lane is full: one more pair of hands
            with self._lock:
                self.slow_workers += 1
                self._spawn(SLOW)
            log.info("慢速来源较多，慢速通道增至 %d 个抓取线程（上限 %d）", self.slow_workers, self.slow_max)
        with self._lock:
            for cfg, lane in chosen:
                self._in_flight[cfg.name] = lane
        for cfg, lane in chosen:
            self._queues[lane].put(cfg)
        if soonest:  # sources passed over for their host's sake: come back when it is free
            self._later(min(soonest))
        return len(chosen)

    def _lanes(self, sources: list[SourceConfig], slow: set[str]) -> tuple[list[SourceConfig], list[SourceConfig]]:
        """The fast and slow lanes' sources, made again only when the sources or the slow set
        change: the same list objects let the poller keep what it derives from them."""
        cached = self._lane_lists
        if cached is None or cached[0] is not sources or cached[1] != slow:
            cached = self._lane_lists = (sources, frozenset(slow), [s for s in sources if s.name not in slow],
                                         [s for s in sources if s.name in slow])
        return cached[2], cached[3]

    def _polite(self, busy: set[str]):
        """Host politeness by choosing, not by sleeping: a due source is taken only if its
        host has a free slot and may be asked within HOST_SLACK; the others wait, still due,
        and `soonest` says when the first of their hosts frees up."""
        gate = self.poller.gate
        by_name = self._by_name
        hosts = Counter(host_of(by_name[n].url) for n in busy if n in by_name)
        soonest: list[float] = []

        def take(cfg: SourceConfig) -> bool:
            host = host_of(cfg.url)
            concurrency, delay = gate.limits(host)
            wait = gate.wait_for(host) + delay * hosts[host]
            if hosts[host] >= concurrency or wait > HOST_SLACK:
                soonest.append(max(wait, 0.05))
                return False
            hosts[host] += 1
            return True

        return take, soonest

    def _later(self, seconds: float) -> None:
        """One timer at a time, for the earliest moment a passed-over host frees up."""
        at = time.monotonic() + seconds
        with self._lock:
            if self._timer_at is not None and self._timer_at <= at + 0.05:
                return
            self._timer_at = at
        timer = threading.Timer(seconds, self._timer_fired)
        timer.daemon = True
        timer.start()

    def _timer_fired(self) -> None:
        with self._lock:
            self._timer_at = None
        self._refill()

    def _rescue(self, now: float) -> None:
        """Fast polls running past slow_after: their source is slow from now on, and a new
        fast worker takes the place of the stuck one (which ends when its poll does)."""
        extra = len(self._retired)
        for thread, (name, started, lane) in self._running.items():
            if lane != FAST or thread in self._retired or now - started <= self.slow_after:
                continue
            self._slow.add(name)
            if extra >= self.max_extra:
                continue
            self._in_flight[name] = "rescued"  # counts against neither lane now
            self._retired.add(thread)
            extra += 1
            self._spawn(FAST)
            log.info("来源「%s」响应过慢（已超过 %.0f 秒），改由慢速通道抓取，不再占用常规抓取线程", name, self.slow_after)

    def _work(self, lane: str) -> None:
        me = threading.current_thread()
        q = self._queues[lane]
        while not self._stop.is_set():
            cfg = q.get()
            if cfg is None:
                return
            started = time.monotonic()
            with self._lock:
                self._running[me] = (cfg.name, started, lane)
            try:
                self._poll(cfg)
            finally:
                with self._lock:
                    del self._running[me]
                    self._in_flight.pop(cfg.name, None)
                    if time.monotonic() - started > self.slow_after:
                        self._slow.add(cfg.name)
                    else:
                        self._slow.discard(cfg.name)
                    if me in self._retired:  # replaced while stuck: the lane has its worker
                        self._retired.discard(me)
                        return
            if q.empty():
                self._refill()

    def _refill(self) -> None:
        try:
            self.dispatch()
        except Exception as e:  # the next poll_check tries again; a database fault is reported there
            log.debug("补充待抓取来源失败：%s", e)

    def _poll(self, cfg: SourceConfig) -> None:
        try:
            result = self.poller.poll(cfg)
        except Exception as e:
            if is_transient(e):
                self.db.failed(e, f"保存来源「{cfg.name}」的抓取结果")
                with self._lock:
                    self._not_before[cfg.name] = time.monotonic() + DB_RETRY
            else:  # Poller.poll turns the source's own errors into results; this is ours
                log.exception("来源「%s」轮询出现意外错误", cfg.name)
            return
        self.db.ok()
        try:
            self.on_done(result)
        except Exception:
            log.exception("处理来源「%s」的抓取结果时出错", cfg.name)

    def stop(self, timeout: float) -> list[str]:
        """Stop taking work; wait up to `timeout` s for polls under way. Returns the sources
        still being read when the time ran out (left behind; they lose nothing)."""
        self._stop.set()
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            for q in self._queues.values():
                q.put(None)
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            return sorted(name for name, _s, _l in self._running.values())
