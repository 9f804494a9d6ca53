"""When to poll a source next (pure): interval with jitter, exponential back-off on failure."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from monitor.clock import backoff


def next_poll(
    now: datetime,
    interval: timedelta,
    jitter: float,
    failures: int,
    max_backoff: timedelta,
    rng: random.Random,
    retry_after: timedelta | None = None,
    not_before: timedelta | None = None,
) -> datetime:
    """not_before: how long the server said its answer stays fresh (Cache-Control, Expires,
    RSS ttl, already capped): a lower bound on the interval, jitter and all."""
    # The first failure already waits twice the interval: a source that just failed is
    # likely to fail again at once.
    delay = backoff(interval * 2, failures, max_backoff) if failures > 0 else interval
    # Jitter spreads sources that share an interval so they do not hit at the same second.
    delay = delay * (1 + rng.uniform(-jitter, jitter))
    if retry_after is not None:
        delay = max(delay, retry_after)
    if not_before is not None:
        delay = max(delay, not_before)
    return now + delay
