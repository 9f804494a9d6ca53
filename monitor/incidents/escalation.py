"""Escalation steps as a pure function of (incident, clocks, policy, now).

A step has a stable key (incident, clock, step) so that firing it can be made to happen
once, by inserting the key into the notification log.
  reminders:    to the first tier, at a share of the time ("50%") or before the deadline
                ("1h"); during quiet hours (when the policy has them) held until they end,
                except the last one before a deadline of 24 h or less
  escalations:  at the deadline one tier up, then every `repeat_every` one tier higher,
                repeating at the top tier until the clock is met or the incident closed
  ack timeouts: not acknowledged `ack_timeout` after opening → one tier up, and again after
                each further `ack_timeout`, up to the top tier
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from monitor.clock import SHANGHAI, as_utc, parse_duration


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
    first_tier: int = 0
    ack_timeout: timedelta | None = None
    quiet: tuple[str, str] | None = None  # ("23:00", "07:00") Beijing time, when it applies


@dataclass(frozen=True)
class IncidentState:
    id: int
    closed: bool = False
    opened_at: datetime | None = None
    acked_at: datetime | None = None


@dataclass(frozen=True)
class Step:
    key: str
    clock: str | None  # None: an acknowledgement timeout, about the incident as a whole
    kind: str  # reminder | escalation
    label: str
    tier: int
    at: datetime
    repeat: bool = False  # an escalation to the top tier, which that tier has had before for this clock


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def quiet_end(at: datetime, quiet: tuple[str, str] | None) -> datetime:
    """`at`, or the end of the quiet hours it falls in."""
    if quiet is None:
        return at
    local = as_utc(at).astimezone(SHANGHAI)
    minute = local.hour * 60 + local.minute
    start, end = _minutes(quiet[0]), _minutes(quiet[1])
    inside = (start <= minute < end) if start < end else (minute >= start or minute < end)
    if not inside:
        return at
    day = local.date() if (start < end or minute < end) else local.date() + timedelta(days=1)
    return as_utc(datetime.combine(day, time.min, tzinfo=SHANGHAI) + timedelta(minutes=end))


URGENT_SPAN = timedelta(hours=24)  # the 5 h and 24 h clocks: their last reminder is never held


def _reminder_times(clock: ClockState, policy: Policy) -> list[tuple[str, datetime]]:
    span = clock.due_at - clock.started_at
    out: dict[datetime, str] = {}
    wanted = []
    for spec in policy.reminders:
        spec = spec.strip()
        if spec.endswith("%"):
            at = clock.started_at + span * (float(spec[:-1]) / 100)
            label = f"remind-{spec}"
        else:
            at = clock.due_at - parse_duration(spec)
            label = f"remind-{spec}-before"
        if clock.started_at < at < clock.due_at:
            wanted.append((at, label))
    last = max((at for at, _label in wanted), default=None)
    for at, label in wanted:
        # During quiet hours a reminder waits for their end, except the last one before a
        # deadline of 24 h or less: a night's wait would leave nobody warned before it.
        keep = at == last and span <= URGENT_SPAN
        held = at if keep else quiet_end(at, policy.quiet)
        if held < clock.due_at:  # held past the deadline, the escalation says it instead
            out.setdefault(held, label)  # two specs landing on one moment make one reminder
    return sorted(((label, at) for at, label in out.items()), key=lambda x: x[1])


def _top(policy: Policy) -> int:
    return max(policy.tiers - 1, 0)


def clock_steps(incident_id: int, clock: ClockState, policy: Policy, until: datetime) -> list[Step]:
    """Every step of one clock whose time is at or before `until`, in time order."""
    steps = [
        Step(f"{incident_id}:{clock.name}:{label}", clock.name, "reminder", label, policy.first_tier, at)
        for label, at in _reminder_times(clock, policy)
        if at <= until
    ]
    if until >= clock.due_at:
        count = int((until - clock.due_at) / policy.repeat_every) + 1
        # Step k goes to tier first+1+k, capped at the top: the steps below the top have a tier
        # each, and of those at the top only the newest can matter. However far a clock is
        # behind (a 1970 date, a week down), that is at most one step per tier.
        below = max(0, _top(policy) - policy.first_tier - 1)
        ks = list(range(min(count, below))) + ([count - 1] if count > below else [])
        for k in ks:
            steps.append(
                Step(
                    f"{incident_id}:{clock.name}:overdue-{k}", clock.name, "escalation", f"overdue-{k}",
                    min(policy.first_tier + 1 + k, _top(policy)), clock.due_at + k * policy.repeat_every,
                    repeat=k >= 1 and policy.first_tier + k >= _top(policy),
                )
            )
    return steps


def ack_steps(incident: IncidentState, policy: Policy, until: datetime) -> list[Step]:
    if policy.ack_timeout is None or incident.opened_at is None:
        return []
    steps = []
    for k in range(1, _top(policy) - policy.first_tier + 1):
        at = incident.opened_at + k * policy.ack_timeout
        if at > until or (incident.acked_at is not None and incident.acked_at <= at):
            break
        steps.append(Step(f"{incident.id}:ack:timeout-{k}", None, "escalation", f"ack-timeout-{k}", policy.first_tier + k, at))
    return steps


def due_steps(incident: IncidentState, clocks: list[ClockState], policy: Policy, now: datetime) -> list[Step]:
    """All steps due by `now`; the caller skips those already in the notification log."""
    if incident.closed:
        return []
    steps: list[Step] = ack_steps(incident, policy, now)
    for clock in clocks:
        if clock.met_at is None:
            steps.extend(clock_steps(incident.id, clock, policy, now))
    return steps


def next_step_at(incident: IncidentState, clocks: list[ClockState], policy: Policy, after: datetime) -> datetime | None:
    """When the next step of this incident falls due, strictly after `after`."""
    if incident.closed:
        return None
    times: list[datetime] = []
    if policy.ack_timeout is not None and incident.opened_at is not None and incident.acked_at is None:
        k = int((after - incident.opened_at) / policy.ack_timeout) + 1 if after >= incident.opened_at else 1
        if k <= _top(policy) - policy.first_tier:
            times.append(incident.opened_at + k * policy.ack_timeout)
    for clock in clocks:
        if clock.met_at is not None:
            continue
        times.extend(at for _label, at in _reminder_times(clock, policy) if at > after)
        if after < clock.due_at:
            times.append(clock.due_at)
        else:
            k = int((after - clock.due_at) / policy.repeat_every) + 1
            times.append(clock.due_at + k * policy.repeat_every)
    return min(times, default=None)


def collapse(new_steps: list[Step], escalated_tier: int = -1) -> tuple[list[Step], list[Step]]:
    """Split steps that fall due together (after downtime) into (send, superseded).

    Each tier hears the latest word on a clock once: an older step to the same tier is
    superseded, and a reminder ("1 小时后到期") is superseded by an escalation of its clock.
    Once a higher tier has been called in (an acknowledgement timeout, `escalated_tier`),
    reminders to lower tiers stop.
    """
    escalated_tier = max([escalated_tier, *(s.tier for s in new_steps if s.clock is None)])
    latest: dict[tuple, Step] = {}
    overdue_clocks = {s.clock for s in new_steps if s.kind == "escalation" and s.clock is not None}
    for s in sorted(new_steps, key=lambda s: s.at):
        latest[(s.clock, s.tier)] = s
    send = [
        s for s in latest.values()
        if not (s.kind == "reminder" and (s.clock in overdue_clocks or s.tier < escalated_tier))
    ]
    keep = {s.key for s in send}
    superseded = [s for s in new_steps if s.key not in keep]
    send.sort(key=lambda s: (s.at, s.key))
    return send, superseded
