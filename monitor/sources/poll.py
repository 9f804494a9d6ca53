"""Polling feed sources: one function tells the story of one poll."""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor import secrets
from monitor.clock import Clock, show_delta, to_db
from monitor.config import HttpConfig, SourceConfig
from monitor.sources.feed import ParseError, parse_feed
from monitor.sources.http import FetchError, fetch
from monitor.sources.schedule import next_poll
from monitor.store.models import Source
from monitor.store.posts import source_row, store_posts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollResult:
    source: str
    status: str  # new | not_modified | unchanged | failed
    new_posts: int = 0
    error: str | None = None


class Poller:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: httpx.Client,
        http: HttpConfig,
        clock: Clock,
        rng: random.Random | None = None,
    ):
        self.sessions = sessions
        self.client = client
        self.http = http
        self.clock = clock
        self.rng = rng or random.Random()

    def register(self, sources: list[SourceConfig]) -> None:
        """Make sure every configured source has its row (and so its state) in the store."""
        with self.sessions.begin() as session:
            for cfg in sources:
                source_row(session, cfg.name, cfg.url, cfg.type)

    def due(self, sources: list[SourceConfig]) -> list[SourceConfig]:
        now = to_db(self.clock.now())
        enabled = {s.name: s for s in sources if s.enabled}
        with self.sessions() as session:
            rows = session.execute(select(Source.name, Source.next_poll_at).where(Source.name.in_(list(enabled)))).all()
        return [enabled[name] for name, at in rows if at is None or at <= now]

    def poll(self, cfg: SourceConfig) -> PollResult:
        """Fetch with cache headers → parse if changed → store new posts → record the outcome."""
        now = self.clock.now()
        with self.sessions.begin() as session:
            row = source_row(session, cfg.name, cfg.url, cfg.type)
            source_id, etag, modified, known_hash = row.id, row.etag, row.last_modified, row.body_hash
        try:
            fetched = fetch(self.client, cfg.url, etag=etag, last_modified=modified, max_bytes=self.http.max_body_bytes, now=now)
            if fetched.not_modified:
                return self._succeeded(cfg, source_id, "not_modified")
            digest = hashlib.sha256(fetched.body).hexdigest()
            if digest == known_hash:
                # Many sites ignore conditional GET; an identical body is not parsed again.
                return self._succeeded(cfg, source_id, "unchanged", fetched.etag, fetched.last_modified)
            posts = parse_feed(fetched.body, fetched.content_type)
            with self.sessions.begin() as session:
                new = store_posts(session, source_id, posts, now)
                self._record_success(session, cfg, source_id, new, fetched.etag, fetched.last_modified, digest)
            if new:
                log.info("来源「%s」新增 %d 条帖文", cfg.name, new)
            return PollResult(cfg.name, "new", new)
        except (FetchError, ParseError) as e:
            return self._failed(cfg, source_id, str(e), getattr(e, "retry_after", None))
        except Exception as e:  # a bug in one source must never stop the others
            log.exception("来源「%s」轮询出现意外错误", cfg.name)
            return self._failed(cfg, source_id, f"内部错误：{type(e).__name__}: {e}", None)

    def _succeeded(self, cfg, source_id, status, etag=None, modified=None) -> PollResult:
        with self.sessions.begin() as session:
            self._record_success(session, cfg, source_id, 0, etag, modified, None)
        return PollResult(cfg.name, status, 0)

    def _record_success(self, session, cfg: SourceConfig, source_id, new, etag, modified, digest) -> None:
        now = self.clock.now()
        row = session.get(Source, source_id)
        if row.consecutive_failures:
            log.info("来源「%s」已恢复（此前连续失败 %d 次）", cfg.name, row.consecutive_failures)
        row.etag = etag or row.etag
        row.last_modified = modified or row.last_modified
        if digest:
            row.body_hash = digest
        row.last_polled_at = row.last_success_at = to_db(now)
        row.consecutive_failures = 0
        row.posts_total += new
        if new:
            row.last_new_post_at = to_db(now)
        row.next_poll_at = to_db(next_poll(now, cfg.interval, cfg.jitter, 0, cfg.max_backoff, self.rng))

    def _failed(self, cfg: SourceConfig, source_id, error: str, retry_after: timedelta | None) -> PollResult:
        now = self.clock.now()
        error = secrets.redact(error)
        with self.sessions.begin() as session:
            row = session.get(Source, source_id)
            row.consecutive_failures += 1
            row.last_polled_at = row.last_error_at = to_db(now)
            row.last_error = error
            at = next_poll(now, cfg.interval, cfg.jitter, row.consecutive_failures, cfg.max_backoff, self.rng, retry_after)
            row.next_poll_at = to_db(at)
            failures = row.consecutive_failures
        log.warning("来源「%s」抓取失败（连续第 %d 次），%s后重试：%s", cfg.name, failures, show_delta(at - now), error)
        return PollResult(cfg.name, "failed", error=error)

