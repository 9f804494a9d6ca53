"""The duty roster (值班表): who receives a tier's alerts at a given moment (pure).

A tier's recipients are the people on its shifts at that moment; shifts for the incident's
department win over general ones (分级负责); with nobody on duty, the tier's own tags from
[[tier]] receive it, so an alert is never addressed to no one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from monitor.clock import SHANGHAI, as_utc
from monitor.config import WEEKDAYS, MainConfig, Person, Shift


def person_tag(name: str) -> str:
    """The apprise tag under which a person's own urls are registered."""
    return f"person:{name}"


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _holidays(cfg: MainConfig, tier: str) -> set[date]:
    return {d for s in cfg.shift if s.tier == tier for d in s.dates}


def _runs_on(shift: Shift, day: date, holidays: set[date]) -> bool:
    if shift.dates:
        return day in shift.dates
    if day in holidays:  # a holiday roster replaces the weekday one for that day
        return False
    return not shift.days or WEEKDAYS[day.weekday()] in shift.days


def _active(shift: Shift, local: datetime, holidays: set[date]) -> bool:
    minute = local.hour * 60 + local.minute
    start, end = _minutes(shift.start), _minutes(shift.end)
    today, yesterday = local.date(), local.date() - timedelta(days=1)
    if start < end:
        return _runs_on(shift, today, holidays) and start <= minute < end
    # past midnight: the evening part today, the morning part of yesterday's shift
    return (_runs_on(shift, today, holidays) and minute >= start) or (_runs_on(shift, yesterday, holidays) and minute < end)


def shifts_on_duty(cfg: MainConfig, tier: str, department: str, at: datetime) -> list[Shift]:
    local = as_utc(at).astimezone(SHANGHAI)
    holidays = _holidays(cfg, tier)
    active = [s for s in cfg.shift if s.tier == tier and _active(s, local, holidays)]
    own = [s for s in active if department and department in s.departments]
    return own or [s for s in active if not s.departments]


def on_duty(cfg: MainConfig, tier: str, department: str, at: datetime) -> list[Person]:
    people = {p.name: p for p in cfg.person}
    names = dict.fromkeys(n for s in shifts_on_duty(cfg, tier, department, at) for n in s.people)
    return [people[n] for n in names]


def recipients(cfg: MainConfig, tier_index: int, department: str, at: datetime) -> tuple[str, ...]:
    """The apprise tags that receive tier `tier_index`'s alert about `department` at `at`."""
    tier = cfg.tier[tier_index]
    tags: list[str] = []
    for person in on_duty(cfg, tier.name, department, at):
        tags.extend(person.tags)
        if person.urls:
            tags.append(person_tag(person.name))
    return tuple(dict.fromkeys(tags)) or tuple(tier.tags)


@dataclass(frozen=True)
class ShiftStart:
    shift: Shift
    index: int
    at: datetime  # aware UTC

    @property
    def key(self) -> str:
        return f"handoff:{self.shift.name or self.index}:{self.at.isoformat()}"


def shift_starts(cfg: MainConfig, after: datetime, until: datetime, tier: str | None = None) -> list[ShiftStart]:
    """Shift starts in (after, until], in time order: when a handoff digest is due."""
    out = []
    first = as_utc(after).astimezone(SHANGHAI).date() - timedelta(days=1)
    last = as_utc(until).astimezone(SHANGHAI).date()
    for index, shift in enumerate(cfg.shift):
        if tier is not None and shift.tier != tier:
            continue
        holidays = _holidays(cfg, shift.tier)
        day = first
        while day <= last:
            if _runs_on(shift, day, holidays):
                start = _minutes(shift.start)
                moment = as_utc(datetime.combine(day, time.min, tzinfo=SHANGHAI) + timedelta(minutes=start))
                if after < moment <= until:
                    out.append(ShiftStart(shift, index, moment))
            day += timedelta(days=1)
    return sorted(out, key=lambda s: (s.at, s.index))


def next_shift_start(cfg: MainConfig, after: datetime, tier: str | None = None) -> datetime | None:
    starts = shift_starts(cfg, after, after + timedelta(days=8), tier)
    return starts[0].at if starts else None
