"""Standard crontab(5) expressions, read by croniter.

APScheduler 3's CronTrigger.from_crontab reads the weekday field Monday-first (0 = Monday),
unlike crontab(5), where 0 and 7 are Sunday (agronholm/apscheduler#286, fixed only in 4.x),
and it ANDs a restricted day of month with a restricted weekday, where cron ORs them.
croniter (pallets-eco) implements crontab(5) as written and answers the one question the
report schedule asks, the latest scheduled time, directly instead of by stepping forward.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from croniter import croniter

from monitor.clock import SHANGHAI


def check(expr: str) -> None:
    """ValueError, in Chinese, unless expr is a five-field crontab expression."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"应为 5 个字段（分 时 日 月 周），实际 {len(fields)} 个")
    try:
        croniter(expr, datetime(2026, 1, 1, tzinfo=SHANGHAI))
    except (ValueError, KeyError):
        raise ValueError("有字段超出范围或无法识别（分 0–59，时 0–23，日 1–31，月 1–12 或 jan–dec，周 0–7 或 sun–sat）") from None


def latest_fire(expr: str, now: datetime, since: datetime) -> datetime | None:
    """The latest time in (since, now] that expr names, read in Beijing time; or None."""
    last = croniter(expr, (now + timedelta(seconds=1)).astimezone(SHANGHAI)).get_prev(datetime)
    return last if last > since else None
