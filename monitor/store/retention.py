"""Keeping the store to a size: posts past `[retention] posts` are pruned, unless an incident
holds them (its posts are its evidence), or they wait to be processed. Their matches go with
them. Pruned in batches, one short transaction each: SQLite's one writer is never held long.

A post pruned is also forgotten by deduplication, so stored posts older than the retention
age are not stored again either (store/posts.py): otherwise a board that still lists a
year-old item would bring it back as new.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.store.models import IncidentPost, Match, Post

BATCH = 2000  # posts per transaction


def prunable(before: datetime, limit: int | None = None):
    held = select(IncidentPost.post_id)
    return (select(Post.id).where(Post.fetched_at < before, Post.processed_at.is_not(None), Post.id.not_in(held))
            .order_by(Post.fetched_at, Post.id).limit(limit))


def prune_batch(session: Session, before: datetime, limit: int = BATCH) -> int:
    ids = list(session.scalars(prunable(before, limit)))
    if ids:
        session.execute(delete(Match).where(Match.post_id.in_(ids)))
        session.execute(delete(Post).where(Post.id.in_(ids)))
    return len(ids)


def prune(sessions: sessionmaker[Session], before: datetime, *, most: int | None = None, stop=lambda: False) -> int:
    """Prune posts fetched before `before`, batch by batch; at most `most` (None: all)."""
    done = 0
    while most is None or done < most:
        with sessions.begin() as session:
            n = prune_batch(session, before, BATCH if most is None else min(BATCH, most - done))
        done += n
        if n == 0 or stop():
            break
    return done


def count(sessions: sessionmaker[Session], before: datetime) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(prunable(before).subquery()))
