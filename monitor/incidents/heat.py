"""How hot an incident is, from its posts' times, sources and authors (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

BARS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Heat:
    last_hour: int  # posts in the last hour
    per_hour: float  # posts per hour over the last `span` hours
    sources: int  # distinct sources
    authors: int  # distinct authors
    growth: float | None  # last hour ÷ the hour before (None when that was empty)

    def describe(self) -> str:
        growth = f"，环比 ×{self.growth:.1f}" if self.growth is not None else ""
        return f"近 1 小时 {self.last_hour} 条{growth}；来源 {self.sources} 个，作者 {self.authors} 人"


def measure(posts: list[tuple[datetime, str, str | None]], now: datetime, span_hours: int = 6) -> Heat:
    """posts: (when, source, author) of every post in the incident."""
    hour = timedelta(hours=1)
    last = sum(1 for t, _s, _a in posts if now - hour < t <= now)
    before = sum(1 for t, _s, _a in posts if now - 2 * hour < t <= now - hour)
    recent = sum(1 for t, _s, _a in posts if now - span_hours * hour < t <= now)
    return Heat(
        last_hour=last,
        per_hour=recent / span_hours,
        sources=len({s for _t, s, _a in posts}),
        authors=len({a for _t, _s, a in posts if a}),
        growth=(last / before) if before else None,
    )


def histogram(times: list[datetime], start: datetime, end: datetime, buckets: int = 24) -> tuple[list[int], timedelta]:
    """Posts per bucket over [start, end], and the buckets' width (at least ten minutes)."""
    if end <= start:
        end = start + timedelta(hours=1)
    width = max((end - start) / buckets, timedelta(minutes=10))
    counts = [0] * buckets
    for t in times:
        index = int((t - start) / width)
        if 0 <= index < buckets:
            counts[index] += 1
    return counts, width


def curve(times: list[datetime], start: datetime, end: datetime, buckets: int = 24) -> tuple[str, timedelta]:
    """A one-line bar chart of posts over [start, end]: the heat curve in a terminal."""
    counts, width = histogram(times, start, end, buckets)
    top = max(counts) or 1
    return "".join(" " if c == 0 else BARS[min(len(BARS) - 1, (c * len(BARS) - 1) // top)] for c in counts), width
