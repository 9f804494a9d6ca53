"""Escalation steps as a pure function of (incident, clocks, policy, now).

A step has a stable key (incident, clock, step) so that firing it can be made to happen
once, by inserting the key into the notification log.
  reminders:   to tier 0, at a share of the time ("50%") or before the deadline ("1h")
  escalations: at the deadline to tier 1, then every `repeat_every` one tier higher,
               repeating at the top tier until the clock is met or the incident closed
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.clock import parse_duration


@dataclass(frozen=True)
class ClockState:
    name: str
    started_at: datetime
    due_at: datetime
    met_at: datetime | None = None


@dataclass(frozen=True)
class Policy:
    reminders: tuple[str, ...]
    repeat_every: timedelta
    tiers: int


@dataclass(frozen=True)
class Step:
    key: str
    clock: str
    kind: str  # reminder | escalation
    label: str
    tier: int
    at: datetime


def _reminder_times(clock: ClockState, policy: Policy) -> list[tuple[str, datetime]]:
    span = clock.due_at - clock.started_at
    out: dict[datetime, str] = {}
    for spec in policy.reminders:
        spec = spec.strip()
        if spec.endswith("%"):
            at = clock.started_at + span * (float(spec[:-1]) / 100)
            label = f"remind-{spec}"
        else:
            at = clock.due_at - parse_duration(spec)
            label = f"remind-{spec}-before"
        if clock.started_at < at < clock.due_at:
            out.setdefault(at, label)  # two specs landing on one moment make one reminder
    return sorted(((label, at) for at, label in out.items()), key=lambda x: x[1])


def clock_steps(incident_id: int, clock: ClockState, policy: Policy, until: datetime) -> list[Step]:
    """Every step of one clock whose time is at or before `until`, in time order."""
    steps = [
        Step(f"{incident_id}:{clock.name}:{label}", clock.name, "reminder", label, 0, at)
        for label, at in _reminder_times(clock, policy)
        if at <= until
    ]
    if until >= clock.due_at:
        count = int((until - clock.due_at) / policy.repeat_every) + 1
        top = max(policy.tiers - 1, 0)
        for k in range(count):
            steps.append(
                Step(
                    f"{incident_id}:{clock.name}:overdue-{k}",
                    clock.name,
                    "escalation",
                    f"overdue-{k}",
                    min(1 + k, top),
                    clock.due_at + k * policy.repeat_every,
                )
            )
    return steps


def due_steps(
    incident_id: int, closed: bool, clocks: list[ClockState], policy: Policy, now: datetime
) -> list[Step]:
    """All steps due by `now`; the caller skips those already in the notification log."""
    if closed:
        return []
    steps: list[Step] = []
    for clock in clocks:
        if clock.met_at is None:
            steps.extend(clock_steps(incident_id, clock, policy, now))
    return steps


def next_step_at(closed: bool, clocks: list[ClockState], policy: Policy, after: datetime) -> datetime | None:
    """When the next step of this incident falls due, strictly after `after`."""
    if closed:
        return None
    best: datetime | None = None
    for clock in clocks:
        if clock.met_at is not None:
            continue
        times = [at for _label, at in _reminder_times(clock, policy) if at > after]
        if after < clock.due_at:
            times.append(clock.due_at)
        else:
            k = int((after - clock.due_at) / policy.repeat_every) + 1
            times.append(clock.due_at + k * policy.repeat_every)
        soonest = min(times)
        best = soonest if best is None else min(best, soonest)
    return best


def collapse(new_steps: list[Step]) -> tuple[list[Step], list[Step]]:
    """Split steps that fall due together (after downtime) into (send, superseded).

    Each tier hears the latest word on a clock once: an older step to the same tier is
    superseded, and a reminder ("1 小时后到期") is superseded by an escalation of its clock.
    """
    latest: dict[tuple[str, int], Step] = {}
    overdue_clocks = {s.clock for s in new_steps if s.kind == "escalation"}
    for s in sorted(new_steps, key=lambda s: s.at):
        latest[(s.clock, s.tier)] = s
    send = [
        s for s in latest.values() if not (s.kind == "reminder" and s.clock in overdue_clocks)
    ]
    keep = {s.key for s in send}
    superseded = [s for s in new_steps if s.key not in keep]
    send.sort(key=lambda s: (s.at, s.key))
    return send, superseded
