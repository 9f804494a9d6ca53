"""Cell values made safe to open: post text must never become a spreadsheet formula."""

from __future__ import annotations

from datetime import date, datetime

from monitor.clock import SHANGHAI, as_utc

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: str) -> str:
    """OWASP's CSV-injection advice: a leading quote makes the cell plain text."""
    return "'" + value if value.startswith(_TRIGGERS) else value


def local_naive(value: datetime) -> datetime:
    """Spreadsheets have no time zones: show Beijing time."""
    return as_utc(value).astimezone(SHANGHAI).replace(tzinfo=None, microsecond=0)


def display(value, kind: str) -> str:
    """How a value reads in Word, HTML and CSV."""
    if value is None:
        return "—"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "change":
        return f"{value:+.1%}"
    if kind in ("hours", "minutes"):
        return f"{value:g}"
    if isinstance(value, datetime):
        return local_naive(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
