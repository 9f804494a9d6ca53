"""Writes every part of the incident service shares: the timeline (every change is an Event
row with actor and time: the audit trail), clocks planned and moved, posts linked."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from monitor.config import MainConfig
from monitor.incidents.clocks import plan_clocks
from monitor.incidents.workdays import WorkCalendar
from monitor.store.models import ClockChange, Event, Incident, IncidentPost, Notification, Outbox, Post, ResponseClock
from monitor.store.posts import upsert

SYSTEM = "system"
_OFFICIAL = "system:官方渠道:"  # the actor of what an official channel did: its source follows


def official_actor(source: str) -> str:
    return _OFFICIAL + source


def official_source(actor: str | None) -> str | None:
    """The source of an official channel's actor, or None for anyone else."""
    return actor[len(_OFFICIAL):] if actor and actor.startswith(_OFFICIAL) else None
RESHAPING = ("merged", "split_out")  # officer actions that move posts between incidents
ACTIONS_SEEN = "monitor.actions_seen"  # session.info key: officers' merges and splits looked for


class ActionError(Exception):
    """An officer action that cannot be done; the message says why, in Chinese."""


class NoSuchIncident(ActionError):
    """The incident asked for does not exist (HTTP 404)."""


def event(session: Session, incident: Incident, now: datetime, actor: str, kind: str, **data) -> None:
    session.add(Event(incident_id=incident.id, at=now, actor=actor, kind=kind, data=data))
    if kind in RESHAPING:
        session.info.pop(ACTIONS_SEEN, None)  # the next post in this transaction looks again


def changed(incident: Incident, now: datetime) -> None:
    """After a change (opened, met, regraded, closed): let the next tick look at it now;
    steps already due, such as those of an old first post, are then fired there."""
    incident.next_step_at = now


def new_clock(session: Session, incident_id: int, name: str, started_at: datetime, due_at: datetime,
              now: datetime) -> ResponseClock:
    clock = ResponseClock(incident_id=incident_id, name=name, started_at=started_at, due_at=due_at, active=True)
    session.add(clock)
    clock_changed(session, clock, now)
    return clock


def clock_changed(session: Session, clock: ResponseClock, now: datetime) -> None:
    """The clock as it stands from now on, for reports that read a period as it stood at its end."""
    session.add(ClockChange(clock=clock, incident_id=clock.incident_id, at=now, active=clock.active,
                            started_at=clock.started_at, due_at=clock.due_at, met_at=clock.met_at))


_KNOWN = "monitor.known_links"  # session.info: post id -> its incidents, for the posts of a batch
_PENDING = "monitor.pending_links"  # session.info: incident_posts rows link() kept for one write


def preload_links(session: Session, post_ids: list[int]) -> None:
    """Read once which incidents a batch's posts are in, so that link() answers without a read
    and its rows go in one INSERT with the batch's others (write_links): one INSERT per joined
    post was a round trip each, the largest share of PostgreSQL's processing time."""
    known = session.info.setdefault(_KNOWN, {})
    for post_id in post_ids:
        known.setdefault(post_id, set())
    # one IN list, bounded like the batch's others (Pipeline.process_pending's batch)
    for incident_id, post_id in session.execute(
        select(IncidentPost.incident_id, IncidentPost.post_id).where(IncidentPost.post_id.in_(post_ids))
    ):
        known[post_id].add(incident_id)


def write_links(session: Session) -> None:
    """Write the links link() kept: before anything in the transaction reads incident_posts,
    and at its end."""
    rows = session.info.pop(_PENDING, None)
    if not rows:
        return
    dialect_insert = upsert(session)
    stmt = (dialect_insert(IncidentPost.__table__).on_conflict_do_nothing() if dialect_insert is not None
            else IncidentPost.__table__.insert())
    session.connection().execute(stmt, rows)


def link(session: Session, incident: Incident, post: Post, now: datetime) -> bool:
    """Put a post into an incident once; False if it is there already.

    A post of a preloaded batch is answered from memory and written by write_links; any other
    with one INSERT … ON CONFLICT DO NOTHING on the transaction's connection: no read first,
    and no flush of what the session holds."""
    if incident.id is None:
        session.flush()  # a new incident needs its id
    known = session.info.get(_KNOWN, {}).get(post.id)
    if known is not None:
        if incident.id in known:
            return False
        known.add(incident.id)
        session.info.setdefault(_PENDING, []).append({"incident_id": incident.id, "post_id": post.id, "added_at": now})
        return True
    dialect_insert = upsert(session)
    if dialect_insert is None:
        if session.get(IncidentPost, (incident.id, post.id)) is not None:
            return False
        session.add(IncidentPost(incident_id=incident.id, post_id=post.id, added_at=now))
        session.flush()
        return True
    if any(isinstance(o, IncidentPost) for o in (*session.new, *session.dirty)):
        session.flush()  # a row added or moved by the ORM (merge, split) goes first
    row = dialect_insert(IncidentPost.__table__).values(incident_id=incident.id, post_id=post.id, added_at=now)
    row = row.on_conflict_do_nothing().returning(IncidentPost.__table__.c.post_id)  # psycopg's rowcount here is -1
    return session.connection().execute(row).first() is not None


def drop_held_steps(session: Session, incident_id: int, clock: str | None = None) -> None:
    """Reminders and escalations waiting for the hourly digest: once answered or closed, not sent."""
    held = select(Notification.id).where(
        Notification.incident_id == incident_id, Notification.kind != "opened", Notification.held_until.is_not(None),
        *([Notification.clock == clock] if clock else []),
    )
    session.execute(
        update(Outbox).where(Outbox.notification_id.in_(held), Outbox.state == "pending").values(state="dropped")
        .execution_options(synchronize_session=False)
    )


def round_of(name: str) -> tuple[str, int]:
    """("权威回应", 2) for "权威回应（第2轮）": a clock started again for a new wave of posts."""
    if name.endswith("轮）") and "（第" in name:
        base, _, number = name[:-2].rpartition("（第")
        if number.isdigit():
            return base, int(number)
    return name, 1


class Planner:
    """The clocks an incident of a severity has, from a start (configuration and calendar)."""

    def __init__(self, cfg: MainConfig):
        self.cfg = cfg
        self.calendar = WorkCalendar(cfg.calendar.holidays, cfg.calendar.workdays)

    def plan(self, incident: Incident, severity: str, start: datetime):
        return plan_clocks(severity, self.cfg.clock, start, incident.rule, incident.category, self.calendar)

    def move_start(self, session: Session, incident: Incident, start: datetime, now: datetime, post: Post | None,
                   actor: str = SYSTEM) -> None:
        """The incident now starts at `start` (a post found later but published earlier, or its
        first post split out): clocks not yet answered count from there."""
        before = incident.started_at
        incident.started_at = start
        plans = {p.name: p for p in self.plan(incident, incident.severity, start)}
        for clock in incident.clocks:
            if clock.active and clock.met_at is None and clock.name in plans:
                clock.started_at, clock.due_at = start, plans[clock.name].due_at
                clock_changed(session, clock, now)
        event(session, incident, now, actor, "start_moved", post=post.id if post is not None else None,
              before=before.isoformat(), after=start.isoformat())
        changed(incident, now)
