"""Which response clocks an incident has, from the rule table in config (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from monitor.config import ClockRule


@dataclass(frozen=True)
class ClockPlan:
    name: str
    started_at: datetime
    due_at: datetime


def plan_clocks(severity: str, rules: list[ClockRule], started_at: datetime) -> list[ClockPlan]:
    return [
        ClockPlan(rule.name, started_at, started_at + rule.within)
        for rule in rules
        if severity in rule.severities
    ]


def clock_start(published_at: datetime | None, fetched_at: datetime) -> datetime:
    """Clocks count from the first post's published time; its fetch time when that is
    missing or in the future (a wrong server clock must not buy the office time)."""
    if published_at is None or published_at > fetched_at:
        return fetched_at
    return published_at
