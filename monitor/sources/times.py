"""Which published times to believe (pure). A source's clock can be wrong, a feed can say
1970-01-01, a board can put next year on a post: such a time is treated as unknown, the
fetch time counts instead, and the post carries a note saying so."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from monitor.clock import show

EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)  # no 政务 board or feed we read is older
FUTURE_SLACK = timedelta(hours=1)  # a server clock a little ahead is not a lie


def believable(published: datetime | None, fetched: datetime) -> tuple[datetime | None, str | None]:
    """(the published time to keep, or None; the note for a person, or None)."""
    if published is None:
        return None, None
    if published < EARLIEST:
        return None, f"发布时间 {show(published)} 早于 2000 年，不可信，按抓取时间 {show(fetched)} 计"
    if published > fetched + FUTURE_SLACK:
        return None, f"发布时间 {show(published)} 晚于抓取时间 {show(fetched)}，不可信，按抓取时间计"
    return published, None
