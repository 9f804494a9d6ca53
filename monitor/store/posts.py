"""Storing posts idempotently: (source, external_id) is unique, re-reading adds nothing."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from monitor.sources import RawPost
from monitor.sources.times import believable
from monitor.store.models import Post, Source


def source_row(session: Session, name: str, url: str, kind: str = "feed") -> Source:
    row = session.scalars(select(Source).where(Source.name == name)).first()
    if row is None:
        row = Source(name=name, url=url, kind=kind, consecutive_failures=0, posts_total=0)
        session.add(row)
        session.flush()
    elif row.url != url:
        _moved(row, url)
    return row


def _moved(row: Source, url: str) -> None:
    # A changed URL is a new feed: its validators and body hash no longer apply.
    row.url, row.etag, row.last_modified, row.body_hash = url, None, None, None


def register_sources(session: Session, wanted: list[tuple[str, str, str]]) -> int:
    """Rows for (name, url, kind) sources: one read, the missing inserted in one statement
    (another instance inserting the same at once is no error), moved URLs reset. Returns how
    many rows were added."""
    by_name = {name: (url, kind) for name, url, kind in wanted}
    existing = {name: url for name, url in session.execute(select(Source.name, Source.url))}
    moved = [name for name, (url, _kind) in by_name.items() if name in existing and existing[name] != url]
    if moved:
        for row in session.scalars(select(Source).where(Source.name.in_(moved))):
            _moved(row, by_name[row.name][0])
    missing = [{"name": name, "url": url, "kind": kind, "consecutive_failures": 0, "posts_total": 0}
               for name, (url, kind) in by_name.items() if name not in existing]
    if missing:
        dialect_insert = upsert(session)
        session.execute(dialect_insert(Source).on_conflict_do_nothing(index_elements=["name"]) if dialect_insert else insert(Source), missing)
    return len(missing)


def upsert(session: Session):
    """The dialect's INSERT that knows ON CONFLICT, where there is one (else None)."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        return None
    return dialect_insert


def _insert_ignoring_duplicates(session: Session, rows: list[dict]) -> int:
    dialect_insert = upsert(session)
    if dialect_insert is not None:
        stmt = dialect_insert(Post).on_conflict_do_nothing(index_elements=["source_id", "external_id"])
        return len(session.execute(stmt.returning(Post.id), rows).all())
    session.execute(insert(Post), rows)
    return len(rows)


def _published(published: datetime | None, now: datetime) -> dict:
    kept, note = believable(published, now)
    return {"published_at": kept, "time_note": note}


REPLY_FIELDS = ("reply_status", "replied", "reply_text", "reply_at")


def content_hash(title: str | None, body: str | None, published: datetime | None) -> str:
    """What tells apart items that share a guid: their text and their date (a notice issued
    again carries the same words under a new date)."""
    when = published.isoformat() if published is not None else ""
    return hashlib.sha256(f"{title or ''}\n{body or ''}\n{when}".encode()).hexdigest()[:16]


def _distinct(posts: list[RawPost], now: datetime) -> dict[str, RawPost]:
    """Posts by external id. A source that gives several different items one guid (the real
    深圳 policy feed puts ten notices under one) gets each as guid#hash-of-content; the same
    item repeated within one body is one post."""
    groups: dict[str, dict[str, RawPost]] = {}
    for p in posts:
        groups.setdefault(p.external_id, {}).setdefault(content_hash(p.title, p.body, believable(p.published_at, now)[0]), p)
    out: dict[str, RawPost] = {}
    for key, variants in groups.items():
        if len(variants) == 1:
            out[key] = next(iter(variants.values()))
        else:
            for digest, p in variants.items():
                out[f"{key}#{digest}"] = replace(p, external_id=f"{key}#{digest}")
    return out


def store_posts(session: Session, source_id: int, posts: list[RawPost], now: datetime,
                forget_before: datetime | None = None) -> int:
    """Insert the posts not stored before; returns how many were new.

    A post stored before is left as it was, except its reply state: a board item that
    was 待回复 and now shows 已办理 updates the post, and the reply stage picks it up.
    forget_before ([retention] posts): a post published before it is not stored, since one
    stored then would have been pruned already (store/retention.py).
    """
    if forget_before is not None:
        posts = [p for p in posts if (believable(p.published_at, now)[0] or now) >= forget_before]
    if not posts:
        return 0
    by_id = _distinct(posts, now)
    known: dict[str, tuple] = {}
    ids = list(by_id)
    # A post told apart by its content (guid#hash) may have been stored under the bare guid
    # when it was alone: look the bare guids up too, and match them by content.
    bare = {key.split("#", 1)[0] for key in ids if "#" in key}
    lookup = [*ids, *sorted(bare)]
    for i in range(0, len(lookup), 500):
        chunk = lookup[i : i + 500]
        for row in session.execute(
            select(Post.external_id, Post.id, Post.reply_status, Post.replied, Post.reply_text, Post.reply_at,
                   Post.title, Post.body, Post.published_at)
            .where(Post.source_id == source_id, Post.external_id.in_(chunk))
        ):
            key = row[0]
            if key not in by_id:
                key = f"{key}#{content_hash(row[6], row[7], row[8])}"
                if key not in by_id:
                    continue
            known[key] = tuple(row[1:6])
    for key, (post_id, *stored) in known.items():
        p = by_id[key]
        fresh = (p.reply_status, p.replied, p.reply_text, p.reply_at)
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
            **_published(p.published_at, now),
            "fetched_at": now,
            "reply_status": p.reply_status,
            "replied": p.replied,
            "reply_text": p.reply_text,
            "reply_at": p.reply_at,
            "repost_of": p.repost_of,
        }
        for key, p in by_id.items()
        if key not in known
    ]
    if not rows:
        return 0
    if any(row["repost_of"] for row in rows):
        # Stored before the batch is processed, so the batch's originals are judged by it.
        session.execute(update(Source).where(Source.id == source_id, Source.links_reposts.is_(False))
                        .values(links_reposts=True))
    return _insert_ignoring_duplicates(session, rows)
