"""What the rest of the program reads of an incident row: plain, immutable values (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from monitor.incidents.escalation import ClockState, IncidentState
from monitor.store.models import Incident


@dataclass(frozen=True)
class IncidentView:
    id: int
    rule: str
    title: str
    severity: str
    category: str
    department: str
    terms: tuple[str, ...]
    first_post_url: str | None
    post_count: int
    opened_at: datetime
    acked_at: datetime | None


def clock_states(incident: Incident) -> list[ClockState]:
    return [
        ClockState(c.name, c.started_at, c.due_at, c.met_at)
        for c in incident.clocks
        if c.active
    ]


def state(incident: Incident) -> IncidentState:
    return IncidentState(incident.id, incident.state == "closed", incident.opened_at, incident.acked_at)


def view(incident: Incident) -> IncidentView:
    return IncidentView(
        id=incident.id,
        rule=incident.rule,
        title=incident.title,
        severity=incident.severity,
        category=incident.category,
        department=incident.department,
        terms=tuple(incident.terms or ()),
        first_post_url=incident.first_post_url,
        post_count=incident.post_count,
        opened_at=incident.opened_at,
        acked_at=incident.acked_at,
    )
