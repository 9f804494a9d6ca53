"""Handoff digests: at each shift start of the first tier, the incoming officers receive
every open incident with its clocks. Keyed by shift and start in the notification log,
so each goes out once, and one missed while the daemon was down is not sent late."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.alerts.channels import Channels
from monitor.alerts.log import Alert, fire
from monitor.alerts.render import render_handoff
from monitor.alerts.roster import person_tag, shift_starts
from monitor.config import MainConfig
from monitor.incidents import views
from monitor.severity import rank
from monitor.store.models import Incident


def send_handoffs(session: Session, cfg: MainConfig, channels: Channels | None, after: datetime, now: datetime,
                  dry_run: bool = False) -> int:
    """Fire the digests of first-tier shifts that started in (after, now]."""
    starts = shift_starts(cfg, after, now, tier=cfg.tier[0].name)
    if not starts:
        return 0
    incidents = session.scalars(select(Incident).where(Incident.state != "closed").order_by(Incident.id)).all()
    listed = sorted(
        ((views.view(i), views.clock_states(i)) for i in incidents),
        key=lambda vc: (rank(vc[0].severity), min((c.due_at for c in vc[1] if c.met_at is None), default=now), vc[0].id),
    )
    people = {p.name: p for p in cfg.person}
    sent = 0
    for start in starts:
        tags: list[str] = []
        for name in start.shift.people:
            person = people[name]
            tags.extend(person.tags)
            if person.urls:
                tags.append(person_tag(name))
        title, body = render_handoff(start.shift.name, start.at, start.shift.people, listed, now)
        alert = Alert(start.key, None, None, "handoff", 0, tuple(dict.fromkeys(tags)) or tuple(cfg.tier[0].tags), start.at, title, body)
        if fire(session, alert, now, None if dry_run else channels, "dry_run" if dry_run else "sent") is not None:
            sent += 1
    return sent
