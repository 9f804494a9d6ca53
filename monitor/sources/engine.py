"""The polling engine: due sources are fed to persistent workers, and each poll's posts are
handed on the moment that poll finishes. No poll waits for another.

Two lanes keep slow sources from holding up the rest:
  fast  `workers` threads. A poll here that runs past `slow_after` (a server that drips one
        byte a second, or never answers) marks its source slow, and a new fast worker takes
        the stuck one's place (at most `max_extra` at once), so the lane always has free hands.
  slow  `slow_workers` threads for sources whose last poll was slow: they can only ever
        hold up each other. A source polled quickly again goes back to the fast lane. The lane
        grows by a worker whenever its polls wait for one (up to `slow_max`): its polls
        mostly wait on the network, and 400 sources taking 5 s each every 5 minutes need
        several times the two workers it starts with.

Choosing is one dispatcher thread's job. A finished poll, a host's gap running out, the next
source falling due or the daemon's poll_check only wakes it, so a burst of finished polls is one choice (one pair of
short queries over 10,000 rows, a few milliseconds) instead of one per poll, and a wake
that comes while it is choosing is never lost: it chooses again.

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

CHOOSE_GAP = 0.1  # seconds between two choices at least: the queues hold enough to bridge it
# Seconds a poll may wait at its host's gate; a longer wait is scheduled instead. A worker
# waiting there is a worker not polling: at 0.5 s, 4 workers managed 18 polls a second.
HOST_SLACK = CHOOSE_GAP
MIN_QUEUED = 8  # polls a lane holds ready beyond its workers, however few they are
NEXT_DUE_CAP = 60.0  # seconds: the daemon's poll_check wakes the dispatcher anyway
DB_RETRY = 10.0  # seconds before a source whose poll met a database fault is tried again
FAST, SLOW = "fast", "slow"
# Seconds after which a poll is slow. A source that takes 3 s is not fast: at 5 s, the feeds
# answering in 3–5 s stayed in the fast lane, and 4 % of sources held 4 fast workers to 16
# polls a second where 10,000 sources every 5 minutes need 33.
SLOW_AFTER = 2.0


class PollEngine:
    def __init__(self, poller: Poller, sources: list[SourceConfig], workers: int, db: DbHealth,
                 on_done: Callable[[PollResult], None] = lambda r: None, *, slow_workers: int | None = None,
                 slow_after: float = SLOW_AFTER, max_extra: int | None = None):
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
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        for _ in range(workers):
            self._spawn(FAST)
        for _ in range(self.slow_workers):
            self._spawn(SLOW)
        self._chooser = threading.Thread(target=self._choose_loop, name="poll-dispatch", daemon=True)
        self._chooser.start()

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

    def wake(self) -> None:
        """Something changed (a poll finished, a host's gap ran out): choose again soon."""
        self._wake.set()

    def dispatch(self) -> int:
        """Hand due sources to their lane, the longest overdue first: enough for every worker
        and more queued, so a worker that finishes never waits for the next choice. The
        dispatcher thread calls this whenever woken; the daemon's poll_check calls it too, so
        that a database fault here is reported. Returns 0 at once if a choice is under way."""
        if self._stop.is_set() or not self._dispatching.acquire(blocking=False):
            return 0
        try:
            return self._dispatch()
        finally:
            self._dispatching.release()

    def _choose_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            self._wake.clear()  # before choosing: a wake during the choice means once more
            with self._dispatching:
                if self._stop.is_set():
                    return
                try:
                    self._dispatch()
                except Exception as e:  # the next poll_check tries again and reports a database fault
                    log.debug("补充待抓取来源失败：%s", e)
            self._stop.wait(CHOOSE_GAP)

    def _dispatch(self) -> int:
        now = time.monotonic()
        with self._lock:
            self._rescue(now)
            busy = set(self._in_flight)
            started = {name for name, _t, _l in self._running.values()}
            waiting = {n for n, t in self._not_before.items() if t > now}
            slow = set(self._slow)
            held = Counter(self._in_flight.values())
            free = {lane: size + max(size, MIN_QUEUED) - held[lane] for lane, size in ((FAST, self.workers), (SLOW, self.slow_workers))}
            # slow polls waiting for a worker while every slow worker is busy: one more pair of hands
            grow = held[SLOW] > self.slow_workers and self.slow_workers < self.slow_max
            sources = self.sources
        skip = busy | waiting
        take, soonest = self._polite(busy, busy - started)
        fast_lane, slow_lane = self._lanes(sources, slow)
        fast = self.poller.due(fast_lane, free[FAST], skip, take) if free[FAST] > 0 else []
        slow_chosen = self.poller.due(slow_lane, free[SLOW], skip, take) if free[SLOW] > 0 and slow else []
        chosen = [(c, FAST) for c in fast] + [(c, SLOW) for c in slow_chosen]
        if len(fast) < free[FAST] or (slow and len(slow_chosen) < free[SLOW]):
            # hands to spare: nothing else is due (or its host is held back), so choose again
            # when the next source falls due, not at the next poll_check
            wait = self.poller.next_due_in()
            if wait is not None:
                soonest.append(min(max(wait, 0.0), NEXT_DUE_CAP))
        if grow:  # its polls mostly wait on the network
            with self._lock:
                self.slow_workers += 1
                self._spawn(SLOW)
            log.info("慢速来源较多，慢速通道增至 %d 个抓取线程（上限 %d）", self.slow_workers, self.slow_max)
        with self._lock:
            for cfg, lane in chosen:
                self._in_flight[cfg.name] = lane
        for cfg, lane in chosen:
            self._queues[lane].put(cfg)
        if soonest:
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

    def _polite(self, busy: set[str], queued: set[str]):
        """Host politeness by choosing, not by sleeping: a due source is taken only if its
        host has a free slot and may be asked within HOST_SLACK; the others wait, still due.
        A poll already under way has reserved its start at the gate; one queued has not, so
        each queued (or taken now) adds a gap before the next. `soonest` says when the first
        host held back by its gap may be asked (a host held back by its slots is free again
        when one of its polls ends, which wakes the dispatcher anyway)."""
        gate = self.poller.gate
        by_name = self._by_name
        hosts = Counter(host_of(by_name[n].url) for n in busy if n in by_name)
        waiting = Counter(host_of(by_name[n].url) for n in queued if n in by_name)
        soonest: list[float] = []

        def take(cfg: SourceConfig) -> bool:
            host = host_of(cfg.url)
            concurrency, delay = gate.limits(host)
            if hosts[host] >= concurrency:
                return False
            wait = gate.wait_for(host) + delay * waiting[host]
            if wait > HOST_SLACK:
                soonest.append(wait)
                return False
            hosts[host] += 1
            waiting[host] += 1
            return True

        return take, soonest

    def _later(self, seconds: float) -> None:
        """One timer at a time, for the earliest moment a host frees up or a source falls due."""
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
        self.wake()

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
                    retired = me in self._retired
                    self._retired.discard(me)
            self.wake()  # a worker, and maybe a slot of its host, is free
            if retired:  # replaced while stuck: the lane has its worker
                return

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
        self._wake.set()
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
