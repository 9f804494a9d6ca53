"""Storing posts idempotently: (source, external_id) is unique, re-reading adds nothing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from monitor.clock import to_db
from monitor.sources import RawPost
from monitor.store.models import Post, Source


def source_row(session: Session, name: str, url: str, kind: str = "feed") -> Source:
    row = session.scalars(select(Source).where(Source.name == name)).first()
    if row is None:
        row = Source(name=name, url=url, kind=kind, consecutive_failures=0, posts_total=0)
        session.add(row)
        session.flush()
    elif row.url != url:
        # A changed URL is a new feed: its validators and body hash no longer apply.
        row.url, row.etag, row.last_modified, row.body_hash = url, None, None, None
    return row


def _insert_ignoring_duplicates(session: Session, rows: list[dict]) -> int:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        dialect_insert = None
    if dialect_insert is not None:
        stmt = dialect_insert(Post).on_conflict_do_nothing(index_elements=["source_id", "external_id"])
        return len(session.execute(stmt.returning(Post.id), rows).all())
    session.execute(insert(Post), rows)
    return len(rows)


REPLY_FIELDS = ("reply_status", "replied", "reply_text", "reply_at")


def store_posts(session: Session, source_id: int, posts: list[RawPost], now: datetime) -> int:
    """Insert the posts not stored before; returns how many were new.

    A post stored before is left as it was, except its reply state: a board item that
    was 待回复 and now shows 已办理 updates the post, and the reply stage picks it up.
    """
    if not posts:
        return 0
    by_id: dict[str, RawPost] = {}
    for p in posts:
        by_id.setdefault(p.external_id, p)  # a feed can repeat an item within one body
    known: dict[str, tuple] = {}
    ids = list(by_id)
    for i in range(0, len(ids), 500):
        for row in session.execute(
            select(Post.external_id, Post.id, Post.reply_status, Post.replied, Post.reply_text, Post.reply_at)
            .where(Post.source_id == source_id, Post.external_id.in_(ids[i : i + 500]))
        ):
            known[row[0]] = row[1:]
    for key, (post_id, *stored) in known.items():
        p = by_id[key]
        fresh = (p.reply_status, p.replied, p.reply_text, to_db(p.reply_at))
        if p.replied is not None and fresh != tuple(stored):
            session.execute(
                update(Post).where(Post.id == post_id)
                .values(**dict(zip(REPLY_FIELDS, fresh, strict=True)), reply_recorded_at=None)
            )
    rows = [
        {
            "source_id": source_id,
            "external_id": p.external_id,
            "url": p.url,
            "title": p.title,
            "body": p.body,
            "author": p.author,
            "published_at": to_db(p.published_at),
            "fetched_at": to_db(now),
            "reply_status": p.reply_status,
            "replied": p.replied,
            "reply_text": p.reply_text,
            "reply_at": to_db(p.reply_at),
            "repost_of": p.repost_of,
        }
        for key, p in by_id.items()
        if key not in known
    ]
    if not rows:
        return 0
    return _insert_ignoring_duplicates(session, rows)
