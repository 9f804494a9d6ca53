"""Who holds a claim on a row (a source being polled, a batch of posts being matched) when
several instances share one PostgreSQL: unique per process and object, so a restarted
instance, or a second poller in a test, is somebody else."""

from __future__ import annotations

import os
import socket
from datetime import datetime
from secrets import token_hex

from sqlalchemy import or_


def owner_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{token_hex(4)}"


def unclaimed(owner, until, me: str, now: datetime):
    """A row free for `me` to claim: never claimed, its claim ran out, or already mine (a retry)."""
    return or_(until.is_(None), until <= now, owner == me)
