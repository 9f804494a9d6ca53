"""Small statistics for the report (pure)."""

from __future__ import annotations

import math


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: a value that actually occurred (p50 of [1,2,3,4] is 2)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def change(now: int, before: int) -> float | None:
    return None if before == 0 else (now - before) / before
