"""Polling sources: one function tells the story of one poll."""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable
from datetime import datetime, timedelta

import httpx
from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor import metrics, secrets
from monitor.clock import Clock, show_delta
from monitor.config import HttpConfig, SourceConfig
from monitor.sources import RawPost
from monitor.sources.board import parse_detail_body, parse_html_board, parse_json_board
from monitor.sources.decode import decode
from monitor.sources.feed import ParseError, read_feed
from monitor.sources.http import Fetched, FetchError, Throttled, fetch
from monitor.sources.polite import HostGate, host_of
from monitor.sources.schedule import next_poll
from monitor.store.claims import owner_id, unclaimed
from monitor.store.faults import is_transient
from monitor.store.models import Post, Source
from monitor.store.posts import register_sources, source_row, store_posts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollResult:
    source: str
    status: str  # new | not_modified | unchanged | failed | throttled (asked again later; not a failure)
    new_posts: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Claimed:
    """A source's state as its lease was taken: what its poll needs, without reading it again."""

    id: int
    url: str
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    next_poll_at: datetime | None
    failures: int


@dataclass
class Read:
    """What one fetch of a source gave: its posts and the validators for the next poll."""

    status: str  # changed | not_modified | unchanged
    posts: list[RawPost] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None
    digest: str | None = None  # None: read again next time even if the bytes look the same
    problems: list[str] = field(default_factory=list)  # items skipped, e.g. a detail page failed
    fresh_for: timedelta | None = None  # the server's word: not worth asking again sooner

    @classmethod
    def answered(cls, status: str, fetched: Fetched, **more) -> Read:
        """A read that keeps what the response said for next time: its validators and freshness."""
        return cls(status, etag=fetched.etag, last_modified=fetched.last_modified, fresh_for=fetched.fresh_for, **more)


THROTTLE_FLOOR = timedelta(seconds=5)  # "Retry-After: 0" over and over must not become a busy loop


class Poller:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: httpx.Client,
        http: HttpConfig,
        clock: Clock,
        rng: random.Random | None = None,
        gate: HostGate | None = None,
        retention: timedelta | None = None,
        lease: timedelta = timedelta(minutes=2),
    ):
        self.sessions = sessions
        self.client = client
        self.http = http
        self.clock = clock
        self.rng = rng or random.Random()
        self.gate = gate or HostGate(http)
        self.retention = retention  # [retention] posts: older posts are not stored
        self.lease = lease
        self.stored: set[str] = set()  # every source name in the store, as of the last register()
        self.owner = owner_id()  # who holds the leases this poller takes
        self._claimed: dict[str, Claimed] = {}  # name → state, from due() to the poll
        self._lanes: dict[int, tuple] = {}  # see _lane

    def register(self, sources: list[SourceConfig]) -> None:
        """Make sure every configured source has its row (and so its state) in the store."""
        with self.sessions.begin() as session:
            register_sources(session, [(cfg.name, cfg.url, cfg.type) for cfg in sources])
            self.stored = set(session.scalars(select(Source.name)))
        self._lanes.clear()

    def due(self, sources: list[SourceConfig], limit: int | None = None, exclude: set[str] | frozenset = frozenset(),
            take: Callable[[SourceConfig], bool] | None = None) -> list[SourceConfig]:
        """Enabled sources due now, the longest overdue first, at most `limit`, each leased to
        this poller until its poll records the outcome (or the lease runs out).

        Instances sharing one PostgreSQL claim in one UPDATE whose free-to-claim condition is
        re-checked under each row's lock, so a source is polled by one of them per interval; a
        killed instance's leases run out after `lease` and its sources pass to the others.

        take: the caller's say on each candidate in order (its host's politeness): those it
        refuses are neither claimed nor counted, and stay due."""
        now = self.clock.now()
        enabled, others = self._lane(sources)
        if not enabled:
            return []
        free = unclaimed(Source.lease_owner, Source.lease_until, self.owner, now)
        # The shorter list in SQL: with 10,000 sources the fast lane is "all but these few".
        if self.stored and len(others) + len(exclude) < len(enabled):
            named = Source.name.not_in(sorted(others | set(exclude)))
        else:
            named = Source.name.in_([n for n in enabled if n not in exclude])
        # With a say, a few times more than wanted are looked at, so that busy hosts can be passed over.
        window = (limit * 4 if take is not None else limit) if limit else None
        with self.sessions.begin() as session:
            picked = []
            for name in self._ready(session, named, free, now, window):
                if limit is not None and len(picked) >= limit:
                    break
                # a name not enabled here was added by another instance: not ours to poll
                if name in enabled and name not in exclude and (take is None or take(enabled[name])):
                    picked.append(name)
            if not picked:
                return []
            rows = session.execute(
                # `free` re-checked under the row lock: PostgreSQL re-checks an UPDATE's own
                # conditions on a row another instance leased meanwhile
                update(Source).where(Source.name.in_(picked), free)
                .values(lease_owner=self.owner, lease_until=now + self.lease)
                .returning(Source.name, Source.next_poll_at, Source.id, Source.url, Source.etag, Source.last_modified,
                           Source.body_hash, Source.consecutive_failures),
                execution_options={"synchronize_session": False},
            ).all()
        rows.sort(key=lambda r: (r.next_poll_at is not None, r.next_poll_at or now, r.id))
        for r in rows:  # the poll starts from this, instead of a transaction of its own to read it
            self._claimed[r.name] = Claimed(r.id, r.url, r.etag, r.last_modified, r.body_hash, r.next_poll_at,
                                            r.consecutive_failures or 0)
        return [enabled[r.name] for r in rows]

    def next_due_in(self) -> float | None:
        """Seconds until the next source falls due (None: none is scheduled). One read of the
        next_poll_at index."""
        now = self.clock.now()
        with self.sessions() as session:
            at = session.scalar(select(func.min(Source.next_poll_at)).where(Source.next_poll_at > now))
        return None if at is None else (at - now).total_seconds()

    def _lane(self, sources: list[SourceConfig]) -> tuple[dict[str, SourceConfig], frozenset[str]]:
        """The enabled sources of a list by name, and the stored names not among them: kept per
        list (the engine's lanes change when the configuration or the slow set does), not
        rebuilt for 10,000 sources on every dispatch."""
        key = id(sources)
        cached = self._lanes.get(key)
        if cached is None or cached[0] is not sources:
            enabled = {s.name: s for s in sources if s.enabled}
            if len(self._lanes) > 8:
                self._lanes.clear()
            cached = self._lanes[key] = (sources, enabled, frozenset(self.stored - enabled.keys()))
        return cached[1], cached[2]

    @staticmethod
    def _ready(session: Session, named, free, now: datetime, window: int | None) -> list[str]:
        """Names of due rows, the never polled first, then the longest overdue: two index range
        reads (ix_sources_next_poll), not a sort of every source on every dispatch."""
        fresh = session.scalars(select(Source.name).where(named, free, Source.next_poll_at.is_(None))
                                .order_by(Source.id).limit(window)).all()
        if window is not None and len(fresh) >= window:
            return fresh
        rest = None if window is None else window - len(fresh)
        return fresh + session.scalars(select(Source.name).where(named, free, Source.next_poll_at <= now)
                                       .order_by(Source.next_poll_at, Source.id).limit(rest)).all()

    def release_leases(self) -> int:
        """At a clean stop: sources still leased to us are free for the others at once."""
        with self.sessions.begin() as session:
            return session.execute(update(Source).where(Source.lease_owner == self.owner)
                                   .values(lease_owner=None, lease_until=None)).rowcount

    def _done_with(self, row: Source) -> None:
        """The outcome is recorded (in this transaction): the lease ends with it."""
        if row.lease_owner == self.owner:
            row.lease_owner = row.lease_until = None

    def poll(self, cfg: SourceConfig) -> PollResult:
        """Fetch with cache headers → parse if changed → store new posts → record the outcome.

        The database's own faults (locked, full, gone) propagate: they are not the source's,
        and nothing of the poll is kept, so the next poll reads the same items again.
        """
        began = time.monotonic()
        result = self._poll(cfg)
        metrics.POLL_SECONDS.observe(time.monotonic() - began)
        metrics.POLLS.labels(result.status).inc()
        metrics.POSTS_STORED.inc(result.new_posts)
        return result

    def _poll(self, cfg: SourceConfig) -> PollResult:
        now = self.clock.now()
        state = self._claimed.pop(cfg.name, None)
        if state is None or state.url != cfg.url:  # polled without due() (tests, `sources test`), or moved
            with self.sessions.begin() as session:
                row = source_row(session, cfg.name, cfg.url, cfg.type)
                state = Claimed(row.id, row.url, row.etag, row.last_modified, row.body_hash, row.next_poll_at,
                                row.consecutive_failures or 0)
        source_id = state.id
        if state.next_poll_at is not None:  # the schedule already holds the jitter: this is lag alone
            metrics.POLL_LAG.observe(max(0.0, (now - state.next_poll_at).total_seconds()))
        try:
            read = self.read(cfg, state.etag, state.last_modified, state.body_hash, now, source_id)
            if read.status != "changed":
                return self._succeeded(cfg, state, read)
            with self.sessions.begin() as session:
                new = store_posts(session, source_id, read.posts, now, now - self.retention if self.retention else None)
                self._record_success(session, cfg, source_id, new, read)
            if new:
                log.info("来源「%s」新增 %d 条帖文", cfg.name, new)
            return PollResult(cfg.name, "new", new, "；".join(read.problems) or None)
        except Throttled as e:
            return self._throttled(cfg, source_id, e)
        except (FetchError, ParseError) as e:
            return self._failed(cfg, source_id, str(e))
        except Exception as e:  # a bug in one source must never stop the others
            if is_transient(e):
                raise
            log.exception("来源「%s」轮询出现意外错误", cfg.name)
            return self._failed(cfg, source_id, f"内部错误：{type(e).__name__}: {e}")

    # ---- reading, storing nothing: also what `monitor sources test` shows ----------

    def read(self, cfg: SourceConfig, etag, modified, known_hash, now: datetime, source_id: int | None = None) -> Read:
        if cfg.type == "feed":
            fetched = self._get(cfg, cfg.url, etag, modified)
            if fetched.not_modified:
                return Read.answered("not_modified", fetched)
            digest = hashlib.sha256(fetched.body).hexdigest()
            if digest == known_hash:
                # Many sites ignore conditional GET; an identical body is not parsed again.
                return Read.answered("unchanged", fetched)
            posts, ttl = read_feed(fetched.body, fetched.content_type)
            read = Read.answered("changed", fetched, posts=posts, digest=digest)
            read.fresh_for = max(filter(None, (fetched.fresh_for, ttl)), default=None)
            return read
        return self._read_board(cfg, etag, modified, known_hash, now, source_id)

    def _read_board(self, cfg: SourceConfig, etag, modified, known_hash, now: datetime, source_id) -> Read:
        parse = parse_json_board if cfg.type == "json" else parse_html_board
        posts: list[RawPost] = []
        hashes = []
        first: Fetched | None = None
        for index in range(cfg.pages):
            url = cfg.page_url(index)
            conditional = index == 0 and cfg.method == "GET"
            fetched = self._get(cfg, url, etag if conditional else None, modified if conditional else None, cfg.page_body(index))
            if index == 0:
                if fetched.not_modified:
                    return Read.answered("not_modified", fetched)
                first = fetched
            hashes.append(hashlib.sha256(fetched.body).hexdigest())
            page = parse(decode(fetched.body, fetched.content_type), cfg, url, now)
            if not page:
                if index == 0:
                    raise ParseError(f"第 1 页没有找到任何条目：页面结构可能已改变，请检查 items「{cfg.items}」")
                break
            posts.extend(page)
        digest = hashlib.sha256("".join(hashes).encode()).hexdigest()
        if digest == known_hash:
            return Read.answered("unchanged", first)
        read = Read.answered("changed", first, posts=posts, digest=digest)
        if cfg.detail_body:
            self._fetch_details(cfg, read, source_id)
        return read

    def _fetch_details(self, cfg: SourceConfig, read: Read, source_id) -> None:
        """Bodies from each new item's own page. An item whose page fails is not stored at
        all (never half a post) and the list is read again next time to retry it."""
        known: set[str] = set()
        if source_id is not None:
            ids = [p.external_id for p in read.posts]
            with self.sessions() as session:
                known = set(session.scalars(select(Post.external_id).where(Post.source_id == source_id, Post.external_id.in_(ids))))
        kept = []
        for post in read.posts:
            if post.external_id in known or not post.url:
                kept.append(post)  # reply state and the like still update from the list
                continue
            try:
                page = self._get(cfg, post.url, None, None, None, method="GET")
                body = parse_detail_body(decode(page.body, page.content_type), cfg.detail_body)
            except (FetchError, ParseError) as e:
                read.problems.append(f"详情页 {post.url}：{e}")
                continue
            kept.append(RawPost(**{**post.__dict__, "body": body or post.body}))
        if len(kept) < len(read.posts):
            read.digest = None
        read.posts = kept

    def _get(self, cfg: SourceConfig, url: str, etag, modified, body=None, method: str | None = None) -> Fetched:
        host = host_of(url)
        try:
            with self.gate.slot(host):
                return fetch(
                    self.client, url, etag=etag, last_modified=modified, max_bytes=self.http.max_body_bytes,
                    now=self.clock.now(), method=method or cfg.method, extra_headers=cfg.headers, content=body,
                    deadline=self.http.deadline, max_retry_after=self.http.max_retry_after,
                )
        except Throttled as e:
            if e.server and e.wait:
                self.gate.pause(host, e.wait)  # paces the host; its other sources wait, none fails
            raise

    # ---- recording the outcome -----------------------------------------------------

    def _succeeded(self, cfg, state: Claimed, read: Read) -> PollResult:
        """Nothing new (304, or the same body). Most polls end here: a source that was well and
        stays well is one UPDATE, not a row loaded and flushed."""
        with self.sessions.begin() as session:
            if state.failures or read.problems:
                self._record_success(session, cfg, state.id, 0, read)
            else:
                now = self.clock.now()
                values = {"last_polled_at": now, "last_success_at": now, "next_poll_at": self._next(cfg, now, read),
                          # the lease ends with the outcome, if it is still ours
                          "lease_owner": case((Source.lease_owner == self.owner, None), else_=Source.lease_owner),
                          "lease_until": case((Source.lease_owner == self.owner, None), else_=Source.lease_until)}
                if read.etag:
                    values["etag"] = read.etag
                if read.last_modified:
                    values["last_modified"] = read.last_modified
                session.execute(update(Source).where(Source.id == state.id).values(**values),
                                execution_options={"synchronize_session": False})
        return PollResult(cfg.name, read.status, 0)

    def _next(self, cfg: SourceConfig, now: datetime, read: Read) -> datetime:
        fresh = min(read.fresh_for, self.http.max_cache_wait) if read.fresh_for else None
        return next_poll(now, cfg.interval, cfg.jitter, 0, cfg.max_backoff, self.rng, not_before=fresh)

    def _record_success(self, session, cfg: SourceConfig, source_id, new: int, read: Read) -> None:
        now = self.clock.now()
        row = session.get(Source, source_id)
        if row.consecutive_failures:
            log.info("来源「%s」已恢复（此前连续失败 %d 次）", cfg.name, row.consecutive_failures)
        row.etag = read.etag or row.etag
        row.last_modified = read.last_modified or row.last_modified
        if read.status == "changed":
            row.body_hash = read.digest
        row.last_polled_at = row.last_success_at = now
        row.consecutive_failures = 0
        row.posts_total += new
        if new:
            if row.last_new_post_at is not None:
                gap = (now - row.last_new_post_at).total_seconds()
                # A moving average of the time between new items: what "usual" means for quiet alerts.
                row.new_item_gap_s = gap if row.new_item_gap_s is None else 0.7 * row.new_item_gap_s + 0.3 * gap
            row.last_new_post_at = now
        if read.problems:
            row.last_error, row.last_error_at = secrets.redact("；".join(read.problems))[:2000], now
            log.warning("来源「%s」部分条目未能读取：%s", cfg.name, row.last_error)
        row.next_poll_at = self._next(cfg, now, read)
        self._done_with(row)

    def _throttled(self, cfg: SourceConfig, source_id, e: Throttled) -> PollResult:
        """Asked again later, not failed: neither counts towards 【数据源异常】."""
        now = self.clock.now()
        if e.wait is None:  # a 429 that names no time: the usual interval
            wait = cfg.interval
        else:  # bounded by [http] max_retry_after where it came from the server
            wait = max(min(e.wait, self.http.max_retry_after) if e.server else e.wait, THROTTLE_FLOOR)
        at = now + wait
        with self.sessions.begin() as session:
            row = session.get(Source, source_id)
            row.next_poll_at = at
            self._done_with(row)
            if e.server:
                row.last_polled_at = now
                row.last_error, row.last_error_at = secrets.redact(str(e)), now
        (log.info if e.server else log.debug)("来源「%s」%s，%s后再抓取", cfg.name, e, show_delta(at - now))
        return PollResult(cfg.name, "throttled", error=str(e))

    def _failed(self, cfg: SourceConfig, source_id, error: str) -> PollResult:
        now = self.clock.now()
        error = secrets.redact(error)
        with self.sessions.begin() as session:
            row = session.get(Source, source_id)
            row.consecutive_failures += 1
            row.last_polled_at = row.last_error_at = now
            row.last_error = error
            at = next_poll(now, cfg.interval, cfg.jitter, row.consecutive_failures, cfg.max_backoff, self.rng)
            row.next_poll_at = at
            self._done_with(row)
            failures = row.consecutive_failures
        log.warning("来源「%s」抓取失败（连续第 %d 次），%s后重试：%s", cfg.name, failures, show_delta(at - now), error)
        return PollResult(cfg.name, "failed", error=error)
