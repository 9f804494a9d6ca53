"""Stored posts → matches → incidents. Shared by the daemon and by replay.

Posts are stored first (committed with their source's state), then processed here; a
post's processed_at is set in the same transaction as its matches and incident changes,
so a crash in between leaves it to be processed at the next run, never lost or doubled.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.clock import Clock
from monitor.incidents.service import Incidents
from monitor.matching.matcher import Matcher
from monitor.metrics import MATCHES, POSTS_PROCESSED
from monitor.store.claims import owner_id, unclaimed
from monitor.store.faults import is_transient
from monitor.store.models import Match as MatchRow
from monitor.store.models import IncidentPost, Post, Source

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, sessions: sessionmaker[Session], matcher: Matcher, incidents: Incidents, clock: Clock,
                 max_attempts: int = 3):
        self.sessions = sessions
        self.matcher = matcher
        self.incidents = incidents
        self.clock = clock
        self.max_attempts = max_attempts
        self.owner = owner_id()  # whose claims on posts these are (PostgreSQL)
        # Processing and the tick run in different threads; one at a time may assign and fire.
        # Matching (the CPU-heavy part) happens before the lock is taken, so a tick waits at
        # most for one batch's writes, never behind a long post's matching.
        self._lock = threading.RLock()

    def replace_matcher(self, matcher: Matcher) -> None:
        """Swap rules between two batches: a post is matched by the old rules or the new, once."""
        with self._lock:
            self.matcher = matcher

    def process_pending(self, batch: int = 500) -> int:
        """Match every unprocessed post; returns how many posts were processed.

        A database fault (locked, full, gone) propagates and leaves the posts unprocessed for
        the next call: it is never an attempt of theirs. A post that fails for a reason of its
        own is tried again on later calls and set aside after max_attempts."""
        done, after = 0, 0
        while True:
            matcher = self.matcher  # one set of rules for the whole batch
            rows = self._take(batch, after)
            if not rows:
                return done
            after = rows[-1].id
            verdicts, failed, involved = {}, {}, set()
            for post_id, title, body, repost_of in rows:
                try:
                    verdicts[post_id] = matcher.match(title or "", body or "")
                except Exception as e:  # a matcher bug on one post: that post's attempt, not the batch's
                    failed[post_id] = e
                    continue
                if verdicts[post_id] or repost_of:
                    involved.add(post_id)  # most posts match nothing and need only their processed mark
            try:
                with self._lock, self.sessions.begin() as session:
                    _exclusive(session)
                    # Marked first, in the statement that says which are still to do: another
                    # instance, or a retry from the CLI, may have done some meanwhile.
                    still = self._mark_processed(session, list(verdicts))
                    posts = session.scalars(select(Post).where(Post.id.in_(involved & still)).order_by(Post.id)).all() if involved else []
                    self._process(session, posts, verdicts)
                done += len(still)
                _count(still, verdicts)
            except Exception as e:
                if is_transient(e):
                    raise
                log.warning("批量处理帖文失败（%s: %s），改为逐条处理以隔离出错的帖文", type(e).__name__, e)
                for post_id in verdicts:
                    done += self._process_alone(post_id, verdicts[post_id], failed)
            for post_id, error in failed.items():
                self._attempt_failed(post_id, error)

    def _take(self, batch: int, after: int) -> list:
        """The next unprocessed posts. On PostgreSQL they are claimed first (FOR UPDATE SKIP
        LOCKED), so instances match different posts: matching is the CPU-heavy part, and two
        instances matching the same backlog did the work twice. A claim left by a killed
        instance runs out after CLAIM; SQLite has one instance and claims nothing."""
        columns = (Post.id, Post.title, Post.body, Post.repost_of)
        pending = (Post.processed_at.is_(None), Post.id > after)
        if self.sessions.kw["bind"].dialect.name != "postgresql":
            with self.sessions() as session:
                return session.execute(select(*columns).where(*pending).order_by(Post.id).limit(batch)).all()
        now = self.clock.now()
        free = unclaimed(Post.claimed_by, Post.claimed_until, self.owner, now)
        claim = select(Post.id).where(*pending, free).order_by(Post.id).limit(batch).with_for_update(skip_locked=True)
        with self.sessions.begin() as session:
            rows = session.execute(
                update(Post).where(Post.id.in_(claim.scalar_subquery()))
                .values(claimed_by=self.owner, claimed_until=now + CLAIM).returning(*columns),
                execution_options={"synchronize_session": False},
            ).all()
        return sorted(rows, key=lambda r: r.id)

    def _process_alone(self, post_id: int, verdicts, failed: dict) -> int:
        try:
            with self._lock, self.sessions.begin() as session:
                _exclusive(session)
                if not self._mark_processed(session, [post_id]):
                    return 0
                self._process(session, [session.get(Post, post_id)], {post_id: verdicts})
            _count({post_id}, {post_id: verdicts})
            return 1
        except Exception as e:
            if is_transient(e):
                raise
            failed[post_id] = e
            return 0

    def _attempt_failed(self, post_id: int, error: Exception) -> None:
        """Count a failed attempt; at max_attempts the post is set aside with its error."""
        with self.sessions.begin() as session:
            post = session.get(Post, post_id)
            post.process_attempts = (post.process_attempts or 0) + 1
            reason = f"{type(error).__name__}: {error}"[:2000]
            if post.process_attempts >= self.max_attempts:
                post.processed_at = self.clock.now()
                post.process_error = reason
                log.error("帖文 %d 处理 %d 次均失败，已搁置（monitor posts failed 查看，monitor posts retry %d 重试）：%s",
                          post_id, post.process_attempts, post_id, reason, exc_info=error)
            else:
                log.warning("帖文 %d 处理失败（第 %d 次，稍后重试）：%s", post_id, post.process_attempts, reason)

    def _mark_processed(self, session: Session, post_ids: list[int]) -> set[int]:
        """Mark those not processed yet as processed (undone with the transaction if it fails),
        and return them."""
        return set(session.scalars(
            update(Post).where(Post.id.in_(post_ids), Post.processed_at.is_(None)).values(processed_at=self.clock.now())
            .returning(Post.id), execution_options={"synchronize_session": False}))

    def _process(self, session: Session, posts: list[Post], verdicts: dict) -> None:
        """Assign the posts that matched (or repost another); record their matches."""
        now = self.clock.now()
        matches = []
        self.incidents.begin_batch(session, [post.id for post in posts])
        official = self._official(session, posts)
        for post in posts:
            if post.source_id in official:
                self.incidents.official(session, post, verdicts[post.id], official[post.source_id], now)
                joined = None
            else:
                joined = self.incidents.join_original(session, post, now) if post.repost_of else []
            for match in verdicts[post.id]:
                matches.append(
                    {
                        "post_id": post.id,
                        "rule": match.rule.name,
                        "terms": match.terms,
                        "severity": match.rule.severity,
                        "category": match.rule.category,
                        "department": match.rule.department,
                        "explanation": match.explanation(),
                    }
                )
            if joined is not None:
                self.incidents.place(session, post, verdicts[post.id], now, joined)
        self.incidents.end_batch(session)
        if matches:
            session.execute(insert(MatchRow), matches)

    def _official(self, session: Session, posts: list[Post]) -> dict[int, str]:
        """The office's own channels among these posts' sources: source id → name."""
        names = self.incidents.cfg.official_sources()
        if not names or not posts:
            return {}
        return dict(session.execute(select(Source.id, Source.name).where(Source.name.in_(sorted(names)))).all())

    def record_replies(self, batch: int = 500) -> int:
        """Official replies seen on boards become evidence on the posts' incidents."""
        with self._lock, self.sessions.begin() as session:
            _exclusive(session)
            posts = session.scalars(
                select(Post)
                .where(Post.replied.is_(True), Post.reply_recorded_at.is_(None), Post.processed_at.is_not(None))
                .order_by(Post.id)
                .limit(batch)
            ).all()
            now = self.clock.now()
            for post in posts:
                for incident_id in session.scalars(select(IncidentPost.incident_id).where(IncidentPost.post_id == post.id)):
                    self.incidents.reply_seen(session, incident_id, post, now)
                post.reply_recorded_at = now
            return len(posts)

    def tick(self) -> int:
        with self._lock, self.sessions.begin() as session:
            _exclusive(session)
            return self.incidents.tick(session, self.clock.now())


def _count(done: set[int], verdicts: dict) -> None:
    """Metrics, once the transaction that processed these posts committed."""
    POSTS_PROCESSED.inc(len(done))
    for post_id in done:
        for match in verdicts[post_id]:
            MATCHES.labels(match.rule.name).inc()


CLAIM = timedelta(minutes=1)  # a killed instance's claimed posts are processed by the others after this


# Any 64-bit constant, the same in every instance: "monitor" in ASCII.
_PG_LOCK = 0x6D6F6E69746F72


def _exclusive(session: Session) -> None:
    """Several instances may share one PostgreSQL: one at a time assigns posts and fires
    steps (two would open the same incident twice). Held to the end of the transaction.
    SQLite needs nothing: it has one writer at a time, and one process uses a file."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
