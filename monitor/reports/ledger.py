"""Incidents and clocks as they stood at a moment, read from the timeline (events and clock
changes), so a report made again later gives the same figures: a regrade, merge or 误报
after a period's end counts in the period it happened in, not in the one already reported."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.store.models import ClockChange, Event, Incident, ResponseClock

UNASSIGNED = "（未指定）"
ON_TIME, LATE, OVERDUE, PENDING = "按时完成", "超时完成", "超时未完成", "未到期"


def settled(outcomes) -> int:
    """Clocks whose deadline has come (on time, late or still open): what an on-time rate divides by."""
    return outcomes[ON_TIME] + outcomes[LATE] + outcomes[OVERDUE]


def chunks(ids: list, size: int = 500):
    """Bounded IN (…) lists."""
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


@dataclass(frozen=True)
class IncidentFact:
    id: int
    rule: str
    title: str
    category: str
    department: str
    severity: str  # as it stood then
    opened_at: datetime
    started_at: datetime
    acked_at: datetime | None  # None if not acknowledged by then
    acked_by: str | None
    closed_at: datetime | None  # None if not closed by then
    merged_into: int | None  # set if merged away by then: it counts as part of that incident
    false_positive: bool  # marked 误报 by then
    first_post_url: str | None

    @property
    def counted(self) -> bool:
        """An incident of its own that the office owed an answer (not merged away, not 误报)."""
        return self.merged_into is None and not self.false_positive


@dataclass(frozen=True)
class ClockFact:
    incident: IncidentFact
    clock_id: int
    name: str
    started_at: datetime
    due_at: datetime
    met_at: datetime | None  # None if not met by then
    met_by: str | None
    evidence: str | None

    def outcome(self, as_of: datetime) -> str:
        if self.met_at is not None:
            return ON_TIME if self.met_at <= self.due_at else LATE
        return OVERDUE if self.due_at <= as_of else PENDING

    # Short names the report's tables use.
    @property
    def incident_id(self) -> int:
        return self.incident.id

    @property
    def department(self) -> str:
        return self.incident.department or UNASSIGNED

    @property
    def severity(self) -> str:
        return self.incident.severity

    @property
    def rule(self) -> str:
        return self.incident.rule


def incidents(session: Session, where, as_of: datetime) -> dict[int, IncidentFact]:
    """The incidents `where` selects, as they stood at `as_of`."""
    rows = session.execute(
        select(Incident.id, Incident.rule, Incident.title, Incident.category, Incident.department, Incident.severity,
               Incident.opened_at, Incident.started_at, Incident.acked_at, Incident.acked_by, Incident.closed_at,
               Incident.merged_into, Incident.false_positive, Incident.first_post_url)
        .where(where, Incident.opened_at < as_of)
    ).all()
    facts = {}
    for (id_, rule, title, category, department, severity, opened, started, acked, acked_by, closed, merged, fp, url) in rows:
        facts[id_] = IncidentFact(
            id_, rule, title, category or "", department or "", severity, opened, started,
            acked if acked is not None and acked < as_of else None, acked_by if acked is not None and acked < as_of else None,
            closed if closed is not None and closed < as_of else None,
            merged if merged is not None and closed is not None and closed < as_of else None,
            False, url,
        )
    if not facts:
        return facts
    # Undo what happened since: the severity before the first later regrade; 误报 only if marked by then.
    later = session.execute(
        select(Event.incident_id, Event.kind, Event.at, Event.data)
        .join(Incident, Incident.id == Event.incident_id)
        .where(where, Event.kind.in_(("regraded", "false_positive")))
        .order_by(Event.at, Event.id)
    ).all()
    seen_regrade: set[int] = set()
    for incident_id, kind, at, data in later:
        fact = facts.get(incident_id)
        if fact is None:
            continue
        if kind == "false_positive" and at < as_of:
            facts[incident_id] = replace(fact, false_positive=True)
        elif kind == "regraded" and at >= as_of and incident_id not in seen_regrade:
            seen_regrade.add(incident_id)
            facts[incident_id] = replace(fact, severity=(data or {}).get("before") or fact.severity)
    return facts


def clocks_due(session: Session, start: datetime, end: datetime, as_of: datetime) -> list[ClockFact]:
    """Clocks that applied at `as_of` and were due in [start, end), as they stood then, of
    incidents still counted then."""
    rows = _clock_rows(session, as_of, ClockChange.due_at >= start, ClockChange.due_at < end)
    return _facts(session, rows, as_of)


def clocks_met_late(session: Session, start: datetime, end: datetime, as_of: datetime) -> list[ClockFact]:
    """Clocks due before `start` and met in [start, end): a late answer counts when it came."""
    rows = _clock_rows(session, as_of, ClockChange.due_at < start, ClockChange.met_at >= start, ClockChange.met_at < end)
    return _facts(session, rows, as_of)


def clocks_of(session: Session, incident_ids: list[int], as_of: datetime) -> list[ClockFact]:
    """Every clock that applied at `as_of` to these incidents."""
    return _facts(session, _clock_rows(session, as_of, ClockChange.incident_id.in_(incident_ids)), as_of)


def _clock_rows(session: Session, as_of: datetime, *conditions):
    latest = select(func.max(ClockChange.id)).where(ClockChange.at < as_of).group_by(ClockChange.clock_id)
    return session.execute(
        select(ClockChange.incident_id, ClockChange.clock_id, ResponseClock.name, ClockChange.started_at, ClockChange.due_at,
               ClockChange.met_at, ResponseClock.met_by, ResponseClock.evidence)
        .join(ResponseClock, ResponseClock.id == ClockChange.clock_id)
        .where(ClockChange.id.in_(latest), ClockChange.active.is_(True), *conditions)
        .order_by(ClockChange.due_at, ClockChange.clock_id)
    ).all()


def _facts(session: Session, rows, as_of: datetime) -> list[ClockFact]:
    ids = sorted({r[0] for r in rows})
    known: dict[int, IncidentFact] = {}
    for part in chunks(ids):
        known.update(incidents(session, Incident.id.in_(part), as_of))
    out = []
    for incident_id, clock_id, name, started, due, met, met_by, evidence in rows:
        fact = known.get(incident_id)
        if fact is None or not fact.counted:
            continue
        met = met if met is not None and met < as_of else None
        out.append(ClockFact(fact, clock_id, name, started, due, met, met_by if met else None, evidence if met else None))
    return out
