"""What the console's pages read, as plain values (no rendering here, no writes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from monitor.alerts.roster import on_duty, person_tag
from monitor.config import Config
from monitor.incidents.clocks import clock_start
from monitor.incidents.heat import histogram
from monitor.store.models import (
    DeliveryAttempt, Event, Incident, IncidentPost, Match, Notification, Outbox, Post, ReportRun, ResponseClock, Source,
)


@dataclass(frozen=True)
class BoardRow:
    incident: Incident
    due_at: datetime | None  # the nearest deadline not yet met
    due_clock: str | None


@dataclass(frozen=True)
class Board:
    rows: list[BoardRow]
    total: int
    page: int
    pages: int
    unacked: int


def board(session: Session, page: int, per_page: int) -> Board:
    """Open incidents, nearest unmet deadline first; those with every clock met come last."""
    nearest = (
        select(ResponseClock.incident_id, func.min(ResponseClock.due_at).label("due"))
        .where(ResponseClock.active.is_(True), ResponseClock.met_at.is_(None))
        .group_by(ResponseClock.incident_id).subquery()
    )
    open_ = Incident.state != "closed"
    total, unacked = session.execute(
        select(func.count(), func.coalesce(func.sum(case((Incident.acked_at.is_(None), 1), else_=0)), 0)).where(open_)
    ).one()
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    found = session.execute(
        select(Incident, nearest.c.due).outerjoin(nearest, nearest.c.incident_id == Incident.id).where(open_)
        .order_by(nearest.c.due.is_(None), nearest.c.due, Incident.id).limit(per_page).offset((page - 1) * per_page)
    ).all()
    ids = [inc.id for inc, _ in found]
    clocks = {}
    if ids:
        for c in session.scalars(select(ResponseClock).where(
                ResponseClock.incident_id.in_(ids), ResponseClock.active.is_(True), ResponseClock.met_at.is_(None))):
            best = clocks.get(c.incident_id)
            if best is None or c.due_at < best.due_at:
                clocks[c.incident_id] = c
    rows = [BoardRow(inc, clocks[inc.id].due_at if inc.id in clocks else None,
                     clocks[inc.id].name if inc.id in clocks else None) for inc, _due in found]
    return Board(rows, total, page, pages, unacked)


def duty_now(cfg: Config, now: datetime) -> list[tuple[str, list[str]]]:
    """Each tier and who is on duty for it now (general shifts)."""
    main = cfg.main
    return [(t.name, [p.name for p in on_duty(main, t.name, "", now)]) for t in main.tier]


@dataclass(frozen=True)
class PostView:
    post: Post
    source: str
    segments: dict = field(default_factory=dict)  # field -> [(text, highlighted)]
    checks: tuple[str, ...] = ()
    also: tuple[str, ...] = ()


def highlight(text: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """A field's text cut into plain and matched pieces (spans from the stored explanation)."""
    out, at = [], 0
    for start, end in sorted(spans):
        start, end = max(start, at), min(end, len(text))
        if start >= end:
            continue
        if start > at:
            out.append((text[at:start], False))
        out.append((text[start:end], True))
        at = end
    if at < len(text):
        out.append((text[at:], False))
    return out


def posts(session: Session, incident: Incident, limit: int = 100, max_chars: int = 2000) -> list[PostView]:
    rows = session.execute(
        select(Post, Source.name).join(IncidentPost, IncidentPost.post_id == Post.id).join(Source, Source.id == Post.source_id)
        .where(IncidentPost.incident_id == incident.id).order_by(Post.id).limit(limit)
    ).all()
    matches: dict[int, list[Match]] = {}
    for m in session.scalars(select(Match).where(Match.post_id.in_([p.id for p, _ in rows])).order_by(Match.id)):
        matches.setdefault(m.post_id, []).append(m)
    views = []
    for post, source in rows:
        own = next((m for m in matches.get(post.id, []) if m.rule == incident.rule), None)
        hits = (own.explanation or {}).get("hits", []) if own else []
        segments = {}
        for name in ("title", "body"):
            text = (getattr(post, name) or "")[:max_chars]
            segments[name] = highlight(text, [(h["start"], h["end"]) for h in hits if h.get("field") == name])
        also = tuple(dict.fromkeys(m.rule for m in matches.get(post.id, []) if m.rule != incident.rule))
        views.append(PostView(post, source, segments, tuple((own.explanation or {}).get("checks", [])) if own else (), also))
    return views


def heat_curve(session: Session, incident: Incident, now: datetime) -> tuple[list[int], timedelta]:
    times = [clock_start(p, f) for p, f in session.execute(
        select(Post.published_at, Post.fetched_at).join(IncidentPost, IncidentPost.post_id == Post.id)
        .where(IncidentPost.incident_id == incident.id))]
    end = now if incident.state != "closed" else max(times, default=now)
    return histogram(times, incident.started_at, end)


def timeline(session: Session, incident_id: int, limit: int = 300) -> tuple[list[Event], int]:
    """The latest `limit` entries in order, and how many there are: a hot incident has an
    entry per post, and its page stays readable."""
    total = session.scalar(select(func.count()).select_from(Event).where(Event.incident_id == incident_id)) or 0
    latest = session.scalars(select(Event).where(Event.incident_id == incident_id)
                             .order_by(Event.at.desc(), Event.id.desc()).limit(limit)).all()
    return list(reversed(latest)), total


def incident_alerts(session: Session, incident_id: int, limit: int = 200) -> list[Notification]:
    latest = session.scalars(select(Notification).where(Notification.incident_id == incident_id)
                             .order_by(Notification.fired_at.desc(), Notification.id.desc()).limit(limit)).all()
    return list(reversed(latest))


@dataclass(frozen=True)
class Delivery:
    notification: Notification
    outbox: list[Outbox]


def alerts(session: Session, limit: int = 200) -> list[Delivery]:
    notes = list(session.scalars(select(Notification).order_by(Notification.fired_at.desc(), Notification.id.desc()).limit(limit)))
    boxes: dict[int, list[Outbox]] = {}
    if notes:
        for row in session.scalars(select(Outbox).where(Outbox.notification_id.in_([n.id for n in notes])).order_by(Outbox.id)):
            boxes.setdefault(row.notification_id, []).append(row)
    return [Delivery(n, boxes.get(n.id, [])) for n in notes]


def attempts(session: Session, outbox_id: int) -> list[DeliveryAttempt]:
    return list(session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.outbox_id == outbox_id).order_by(DeliveryAttempt.at)))


def sources(session: Session) -> list[Source]:
    return list(session.scalars(select(Source).where(Source.kind != "replay").order_by(Source.name)))


def report_runs(session: Session, limit: int = 50) -> list[ReportRun]:
    return [r for r in session.scalars(select(ReportRun).order_by(ReportRun.scheduled_at.desc()).limit(limit)) if r.files]


@dataclass(frozen=True)
class OnTime:
    clock: str
    due: int  # clocks whose deadline has passed, or that were met
    on_time: int
    late: int
    overdue: int  # past the deadline, not met

    @property
    def rate(self) -> str:
        return f"{self.on_time / self.due:.0%}" if self.due else "—"


def on_time(session: Session, now: datetime, since: datetime) -> list[OnTime]:
    """Per clock, over incidents opened since `since` (误报 not counted)."""
    rows = session.execute(
        select(ResponseClock.name, ResponseClock.due_at, ResponseClock.met_at)
        .join(Incident, Incident.id == ResponseClock.incident_id)
        .where(ResponseClock.active.is_(True), Incident.opened_at >= since, Incident.false_positive.is_(False),
               Incident.merged_into.is_(None))
    ).all()
    out: dict[str, list[int]] = {}
    for name, due, met in rows:
        counts = out.setdefault(name, [0, 0, 0, 0])
        if met is not None:
            counts[0] += 1
            counts[1 if met <= due else 2] += 1
        elif due < now:
            counts[0] += 1
            counts[3] += 1
    return [OnTime(name, *c) for name, c in out.items()]


def recipient(cfg: Config, tag: str, display: str) -> str:
    """Who an alert's delivery reached, as a person reads it: the person whose tag it is, or
    the channel."""
    holders = [p.name for p in cfg.main.person if tag == person_tag(p.name) or tag in p.tags]
    if len(holders) == 1:
        return holders[0]
    tier = next((t.name for t in cfg.main.tier if tag in t.tags), None)
    return f"{tier}（{display}）" if tier else display

