"""Fetching sources and turning them into posts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RawPost:
    """A post as a source gives it, before it is stored."""

    external_id: str
    url: str | None
    title: str
    body: str
    author: str | None
    published_at: datetime | None  # aware UTC, or None when the source gives none
    # Boards that show an official reply: None when the source has no such thing.
    reply_status: str | None = None
    replied: bool | None = None
    reply_text: str | None = None
    reply_at: datetime | None = None
    # What this post reposts (the original's id in the same source): Weibo's API and //@ chains say so.
    repost_of: str | None = None
