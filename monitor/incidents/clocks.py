"""Which response clocks an incident has, from the rule table in config (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from monitor.config import ClockRule
from monitor.incidents.workdays import WorkCalendar


@dataclass(frozen=True)
class ClockPlan:
    name: str
    started_at: datetime
    due_at: datetime


def plan_clocks(
    severity: str, rules: list[ClockRule], started_at: datetime, rule: str = "", category: str = "",
    calendar: WorkCalendar | None = None,
) -> list[ClockPlan]:
    plans = []
    for clock in rules:
        if not clock.applies(severity, rule, category):
            continue
        if clock.working_days is not None:
            due = (calendar or WorkCalendar()).add_working_days(started_at, clock.working_days)
        else:
            due = started_at + clock.within
        plans.append(ClockPlan(clock.name, started_at, due))
    return plans


def clock_start(published_at: datetime | None, fetched_at: datetime) -> datetime:
    """Clocks count from the first post's published time; its fetch time when that is
    missing or in the future (a wrong server clock must not buy the office time)."""
    if published_at is None or published_at > fetched_at:
        return fetched_at
    return published_at
