"""Stored posts → matches → incidents. Shared by the daemon and by replay.

Posts are stored first (committed with their source's state), then processed here; a
post's processed_at is set in the same transaction as its matches and incident changes,
so a crash in between leaves it to be processed at the next run, never lost or doubled.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.clock import Clock, to_db
from monitor.incidents.service import Incidents
from monitor.matching.matcher import Matcher
from monitor.store.models import Match as MatchRow
from monitor.store.models import IncidentPost, Post

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, sessions: sessionmaker[Session], matcher: Matcher, incidents: Incidents, clock: Clock):
        self.sessions = sessions
        self.matcher = matcher
        self.incidents = incidents
        self.clock = clock
        # Polling and the tick run in different threads; one at a time may assign and fire.
        self._lock = threading.RLock()

    def replace_matcher(self, matcher: Matcher) -> None:
        """Swap rules between two batches: a post is matched by the old rules or the new, once."""
        with self._lock:
            self.matcher = matcher

    def process_pending(self, batch: int = 500) -> int:
        """Match every unprocessed post; returns how many posts were processed."""
        with self._lock:
            return self._process_pending(batch)

    def _process_pending(self, batch: int) -> int:
        done = 0
        while True:
            ids: list[int] = []
            try:
                with self.sessions.begin() as session:
                    _exclusive(session)
                    posts = session.scalars(
                        select(Post).where(Post.processed_at.is_(None)).order_by(Post.id).limit(batch)
                    ).all()
                    ids = [p.id for p in posts]
                    self._process(session, posts)
            except Exception:
                if not ids:
                    raise  # the store itself failed: the job reports it and the posts wait
                log.exception("批量处理帖文失败，改为逐条处理以隔离出错的帖文")
                for post_id in ids:
                    self._process_alone(post_id)
            if not ids:
                return done
            done += len(ids)

    def _process_alone(self, post_id: int) -> None:
        try:
            with self.sessions.begin() as session:
                _exclusive(session)
                post = session.get(Post, post_id)
                if post.processed_at is not None:
                    return
                self._process(session, [post])
        except Exception as e:
            log.exception("处理帖文 %d 失败", post_id)
            with self.sessions.begin() as session:
                post = session.get(Post, post_id)
                post.processed_at = to_db(self.clock.now())
                post.process_error = f"{type(e).__name__}: {e}"

    def _process(self, session: Session, posts: list[Post]) -> None:
        now = self.clock.now()
        matches = []
        for post in posts:
            if post.repost_of:
                self.incidents.join_original(session, post, now)
            for match in self.matcher.match(post.title or "", post.body or ""):
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
                self.incidents.assign(session, post, match, now)
        # Set-based writes: most posts match nothing and need only their processed mark.
        if matches:
            session.execute(insert(MatchRow), matches)
        session.execute(
            update(Post).where(Post.id.in_([p.id for p in posts])).values(processed_at=to_db(now)),
            execution_options={"synchronize_session": False},
        )

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
                post.reply_recorded_at = to_db(now)
            return len(posts)

    def tick(self) -> int:
        with self._lock, self.sessions.begin() as session:
            _exclusive(session)
            return self.incidents.tick(session, self.clock.now())


# Any 64-bit constant, the same in every instance: "monitor" in ASCII.
_PG_LOCK = 0x6D6F6E69746F72


def _exclusive(session: Session) -> None:
    """Several instances may share one PostgreSQL: one at a time assigns posts and fires
    steps (two would open the same incident twice). Held to the end of the transaction.
    SQLite needs nothing: it has one writer at a time, and one process uses a file."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
