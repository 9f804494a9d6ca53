"""Times as message boards print them, read in Beijing time (pure; `now` is passed in).

Seen on real boards: 2019/2/28 11:25:05, 2020-7-19, 2019-12, 7-3, 16:09, 02月23日 02:17,
3小时前, 3 天前, 刚刚, 昨天 14:05, 前天 08:00, epoch seconds or milliseconds.
A time without a year is this year, or last year when that would be in the future.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from monitor.clock import SHANGHAI, as_utc

_AGO = re.compile(r"^(\d+)\s*(秒|分钟|分|小时|个小时|天|日|周|个月|月)前$")
_UNITS = {"秒": 1, "分钟": 60, "分": 60, "小时": 3600, "个小时": 3600, "天": 86400, "日": 86400, "周": 7 * 86400,
          "个月": 30 * 86400, "月": 30 * 86400}
_RELATIVE_DAY = re.compile(r"^(今天|昨天|前天)\s*(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_YMD = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[\sT]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_YM = re.compile(r"^(\d{4})[-/.年](\d{1,2})月?$")
_MD = re.compile(r"^(\d{1,2})[-/.月](\d{1,2})日?(?:\s*(\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_HM = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u00a0", " ").replace("\u3000", " ")).strip()


def parse_board_time(text: str | int | float | None, now: datetime, formats: list[str] | None = None) -> datetime | None:
    """Aware UTC, or None when the text is not a time we can read."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = text / 1000 if text > 1e11 else text
        return as_utc(datetime.fromtimestamp(seconds, tz=SHANGHAI))
    value = _clean(str(text))
    local_now = as_utc(now).astimezone(SHANGHAI)
    for fmt in formats or ():
        try:
            parsed = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return as_utc(parsed.replace(tzinfo=parsed.tzinfo or SHANGHAI))
    if value.isdigit() and len(value) in (10, 13):
        return parse_board_time(int(value), now)
    if value == "刚刚":
        return as_utc(now)
    if m := _AGO.match(value.replace(" ", "")):
        return as_utc(now) - timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    if m := _RELATIVE_DAY.match(value):
        back = {"今天": 0, "昨天": 1, "前天": 2}[m.group(1)]
        day = local_now.date() - timedelta(days=back)
        return _local(day.year, day.month, day.day, m.group(2), m.group(3), m.group(4))
    if m := _YMD.match(value):
        return _local(*m.groups())
    if m := _YM.match(value):
        return _local(m.group(1), m.group(2), 1)
    if m := _MD.match(value):
        when = _local(local_now.year, *m.groups())
        if when is not None and when > as_utc(now) + timedelta(days=1):
            when = _local(local_now.year - 1, *m.groups())
        return when
    if m := _HM.match(value):
        when = _local(local_now.year, local_now.month, local_now.day, *m.groups())
        if when is not None and when > as_utc(now) + timedelta(minutes=5):
            when -= timedelta(days=1)  # "23:50" seen at 00:10 is yesterday's
        return when
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return as_utc(parsed if parsed.tzinfo else parsed.replace(tzinfo=SHANGHAI))


def _local(year, month, day, hour=None, minute=None, second=None) -> datetime | None:
    try:
        return as_utc(datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), tzinfo=SHANGHAI))
    except ValueError:
        return None
