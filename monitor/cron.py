"""Standard crontab expressions for APScheduler 3.

APScheduler 3's CronTrigger.from_crontab reads the weekday field Monday-first (0 = Monday),
unlike crontab(5), where 0 and 7 are Sunday and 1 is Monday: "0 9 * * 1" would run on
Tuesdays (agronholm/apscheduler#286, fixed only in 4.x). We expand the weekday field to
day names, which both agree on.
"""

from __future__ import annotations

from apscheduler.triggers.cron import CronTrigger

_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def _weekday(value: str) -> int:
    v = value.strip().lower()
    if v[:3] in _NAMES:
        return _NAMES.index(v[:3])
    n = int(v)
    if not 0 <= n <= 7:
        raise ValueError(f"星期取值 {value!r} 超出 0–7")
    return n % 7


def _weekdays(field: str) -> str:
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"步长 {step_text!r} 无效")
        if base in ("*", ""):
            first, last = 0, 6
        elif "-" in base:
            a, b = base.split("-", 1)
            first, last = _weekday(a), _weekday(b)
            if b.strip() == "7":
                last = 7  # "5-7" is Friday to Sunday
        else:
            first = last = _weekday(base)
            if step_text:
                last = 6
        span = range(first, last + 1) if last >= first else [*range(first, 7), *range(0, last + 1)]
        days.update(d % 7 for d in list(span)[::step])
    return ",".join(_NAMES[d] for d in sorted(days))


def crontab_trigger(expr: str, timezone) -> CronTrigger:
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"应为 5 个字段（分 时 日 月 周），实际 {len(fields)} 个")
    minute, hour, day, month, weekday = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_weekdays(weekday), timezone=timezone)
