"""Stored posts → matches → incidents. Shared by the daemon and by replay.

Posts are stored first (committed with their source's state), then processed here; a
post's processed_at is set in the same transaction as its matches and incident changes,
so a crash in between leaves it to be processed at the next run, never lost or doubled.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.clock import Clock, to_db
from monitor.incidents.service import Incidents
from monitor.matching.matcher import Matcher
from monitor.store.models import Match as MatchRow
from monitor.store.models import Post

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, sessions: sessionmaker[Session], matcher: Matcher, incidents: Incidents, clock: Clock):
        self.sessions = sessions
        self.matcher = matcher
        self.incidents = incidents
        self.clock = clock
        # Polling and the tick run in different threads; one at a time may assign and fire.
        self._lock = threading.RLock()

    def process_pending(self, batch: int = 200) -> int:
        """Match every unprocessed post; returns how many posts were processed."""
        with self._lock:
            return self._process_pending(batch)

    def _process_pending(self, batch: int) -> int:
        done = 0
        while True:
            with self.sessions() as session:
                ids = session.scalars(
                    select(Post.id).where(Post.processed_at.is_(None)).order_by(Post.id).limit(batch)
                ).all()
            if not ids:
                return done
            try:
                with self.sessions.begin() as session:
                    for post_id in ids:
                        self._process(session, session.get(Post, post_id))
            except Exception:
                log.exception("批量处理帖文失败，改为逐条处理以隔离出错的帖文")
                for post_id in ids:
                    self._process_alone(post_id)
            done += len(ids)

    def _process_alone(self, post_id: int) -> None:
        try:
            with self.sessions.begin() as session:
                self._process(session, session.get(Post, post_id))
        except Exception as e:
            log.exception("处理帖文 %d 失败", post_id)
            with self.sessions.begin() as session:
                post = session.get(Post, post_id)
                post.processed_at = to_db(self.clock.now())
                post.process_error = f"{type(e).__name__}: {e}"

    def _process(self, session: Session, post: Post) -> None:
        now = self.clock.now()
        for match in self.matcher.match(post.title or "", post.body or ""):
            session.add(
                MatchRow(
                    post_id=post.id,
                    rule=match.rule.name,
                    terms=match.terms,
                    severity=match.rule.severity,
                    category=match.rule.category,
                    department=match.rule.department,
                )
            )
            self.incidents.assign(session, post, match, now)
        post.processed_at = to_db(now)

    def tick(self) -> int:
        with self._lock, self.sessions.begin() as session:
            return self.incidents.tick(session, self.clock.now())
