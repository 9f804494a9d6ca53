"""Working days on the Chinese holiday calendar (pure).

chinese-calendar knows the State Council's schedule for the years it ships; the office's
[calendar] lists add holidays and make-up workdays (调休) on top, for a year the package
does not know yet (the schedule is published late in the year) or for local rest days.
Without either, a year falls back to Monday–Friday, and says so once.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

from monitor.clock import SHANGHAI, as_utc

log = logging.getLogger(__name__)
_warned: set[int] = set()


class WorkCalendar:
    def __init__(self, holidays: list[date] = (), workdays: list[date] = ()):
        self.holidays = set(holidays)
        self.workdays = set(workdays)

    def is_workday(self, day: date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        try:
            import chinese_calendar

            return chinese_calendar.is_workday(day)
        except (ImportError, NotImplementedError):
            if day.year not in _warned:
                _warned.add(day.year)
                log.warning("%d 年的法定节假日安排未知：按周一至周五计算工作日，请在 [calendar] 中补充 holidays 与 workdays", day.year)
            return day.weekday() < 5

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The end (24:00 Beijing time) of the `days`-th working day after the start's date:
        the day something is received does not count, as in 依申请公开's 20 working days."""
        day = as_utc(start).astimezone(SHANGHAI).date()
        counted = 0
        while counted < days:
            day += timedelta(days=1)
            if self.is_workday(day):
                counted += 1
        return as_utc(datetime.combine(day + timedelta(days=1), time.min, tzinfo=SHANGHAI))
