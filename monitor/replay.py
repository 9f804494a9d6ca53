"""`monitor replay`: the real pipeline over recorded posts under a simulated clock.

No sleeping, no network (unless alerts are really sent): time jumps from one event to
the next, where an event is a post arriving (at its published time), an officer action,
or an escalation step falling due. The same input gives the same result, byte for byte.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from monitor.alerts.handoff import send_handoffs
from monitor.alerts.links import readable
from monitor.alerts.outbox import deliver_due
from monitor.alerts.roster import next_shift_start
from monitor.app import build
from monitor.clock import FakeClock, iso_local, parse_iso
from monitor.config import Config
from monitor.incidents.service import ActionError
from monitor.sources import RawPost
from monitor.store.models import Event, Incident, IncidentPost, Notification, Post, ResponseClock
from monitor.store.models import Match as MatchRow
from monitor.store.posts import source_row, store_posts

ACTIONS = ("ack", "met", "close", "regrade", "false_positive", "merge", "split", "confirm")


class ReplayInputError(Exception):
    pass


@dataclass(frozen=True)
class ReplayPost:
    source: str
    raw: RawPost
    answered: RawPost | None = None  # a board message as it shows once the official reply is up (at its reply_at)


@dataclass(frozen=True)
class ReplayAction:
    at: datetime
    post: str
    action: str
    clock: str | None
    level: str | None
    evidence: str | None
    actor: str
    note: str | None = None
    other: str | None = None  # merge: a post of the incident merged in
    posts: tuple[str, ...] = ()  # split: the posts that leave


def _lines(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ReplayInputError(f"{path}: 无法读取（{e.strerror}）") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise ReplayInputError(f"{path}:{number}: 不是合法的 JSON：{e.msg}") from None
        if not isinstance(value, dict):
            raise ReplayInputError(f"{path}:{number}: 每行应为一个 JSON 对象")
        yield number, value


def _time(path: Path, number: int, value, field: str) -> datetime:
    if not isinstance(value, str):
        raise ReplayInputError(f"{path}:{number}: {field} 应为带时区的 ISO 8601 时间字符串")
    try:
        return parse_iso(value)
    except ValueError:
        raise ReplayInputError(f"{path}:{number}: {field} 无法识别的时间 {value!r}") from None


def read_posts(path: Path) -> list[ReplayPost]:
    posts = []
    for number, v in _lines(path):
        for key in ("source", "id", "published_at"):
            if v.get(key) in (None, ""):
                raise ReplayInputError(f"{path}:{number}: 缺少 {key}")
        published = _time(path, number, v["published_at"], "published_at")
        reply_at = _time(path, number, v["reply_at"], "reply_at") if v.get("reply_at") not in (None, "") else None
        raw = RawPost(
            external_id=str(v["id"]),
            url=v.get("url") or None,
            title=str(v.get("title") or ""),
            body=str(v.get("body") or ""),
            author=v.get("author") or None,
            published_at=published,
            repost_of=str(v["repost_of"]) if v.get("repost_of") not in (None, "") else None,
        )
        answered = None
        if reply_at is not None or v.get("reply_text"):
            # A board message: it shows 待回复 until its reply is up, then the reply.
            if reply_at is None:
                raise ReplayInputError(f"{path}:{number}: 有 reply_text 时需要 reply_at（答复时间）")
            answered = replace(raw, replied=True, reply_status=str(v.get("reply_status") or "已答复"),
                               reply_text=str(v.get("reply_text") or ""), reply_at=reply_at)
            raw = replace(raw, replied=False, reply_status="待回复")
        posts.append(ReplayPost(str(v["source"]), raw, answered))
    return posts


def read_actions(path: Path) -> list[ReplayAction]:
    actions = []
    for number, v in _lines(path):
        if v.get("action") not in ACTIONS:
            raise ReplayInputError(f"{path}:{number}: action 应为 {' | '.join(ACTIONS)}")
        if v.get("post") in (None, ""):
            raise ReplayInputError(f"{path}:{number}: 缺少 post（事件中任一帖文的 id）")
        if v["action"] == "met" and not v.get("clock"):
            raise ReplayInputError(f"{path}:{number}: met 需要 clock（时限名称）")
        if v["action"] == "regrade" and not v.get("level"):
            raise ReplayInputError(f"{path}:{number}: regrade 需要 level（级别）")
        if v["action"] == "merge" and v.get("other") in (None, ""):
            raise ReplayInputError(f"{path}:{number}: merge 需要 other（要并入的事件中任一帖文的 id）")
        if v["action"] == "split" and (not isinstance(v.get("posts"), list) or not v["posts"]):
            raise ReplayInputError(f"{path}:{number}: split 需要 posts（要拆出的帖文 id 列表）")
        actions.append(
            ReplayAction(
                at=_time(path, number, v.get("at"), "at"),
                post=str(v["post"]),
                action=v["action"],
                clock=v.get("clock"),
                level=v.get("level"),
                evidence=v.get("evidence"),
                actor=str(v.get("actor") or "replay"),
                note=v.get("note"),
                other=str(v["other"]) if v.get("other") not in (None, "") else None,
                posts=tuple(str(p) for p in v.get("posts") or ()),
            )
        )
    return actions


def replay(
    cfg: Config,
    posts: list[ReplayPost],
    actions: list[ReplayAction],
    *,
    until: datetime | None = None,
    dry_run: bool = True,
    database_url: str | None = None,
) -> dict:
    posts = sorted(posts, key=lambda p: p.raw.published_at)  # stable: file order breaks ties
    actions = sorted(actions, key=lambda a: a.at)
    times = [p.raw.published_at for p in posts] + [a.at for a in actions] + [p.answered.reply_at for p in posts if p.answered]
    if not times:
        return {"incidents": [], "alerts": []}
    end = until or (max(times) + timedelta(hours=72))
    with tempfile.TemporaryDirectory(prefix="monitor-replay-") as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'replay.db'}"
        clock = FakeClock(min(times))
        app = build(cfg, clock, database_url=url, dry_run=dry_run)
        try:
            errors = _run(app, clock, posts, actions, end)
            if not dry_run and app.channels is not None:
                deliver_due(app.sessions, app.channels, clock, cfg.main.alerts)
            result = _result(app, cfg)
        finally:
            app.engine.dispose()
    if errors:
        result["errors"] = errors
    return result


def _run(app, clock: FakeClock, posts, actions, end: datetime) -> list[str]:
    errors: list[str] = []
    sources: dict[str, int] = {}
    # a reply shows no earlier than its message
    replies = sorted((max(p.answered.reply_at, p.raw.published_at), n, p) for n, p in enumerate(posts) if p.answered)
    pi = ai = ri = 0
    last = clock.now() - timedelta(microseconds=1)
    while True:
        candidates = []
        if pi < len(posts):
            candidates.append(posts[pi].raw.published_at)
        if ri < len(replies):
            candidates.append(replies[ri][0])
        if ai < len(actions):
            candidates.append(actions[ai].at)
        with app.sessions() as session:
            step_at = session.scalar(select(func.min(Incident.next_step_at)))
        if step_at is not None:
            candidates.append(step_at)
        shift_at = next_shift_start(app.cfg.main, clock.now(), app.cfg.main.tier[0].name) if app.cfg.main.shift else None
        if shift_at is not None:
            candidates.append(shift_at)
        if not candidates:
            break
        now = max(min(candidates), clock.now())
        if now > end:
            break
        clock.set(now)
        arrived = []
        while pi < len(posts) and posts[pi].raw.published_at <= now:
            arrived.append(posts[pi])
            pi += 1
        if arrived:
            with app.sessions.begin() as session:
                for p in arrived:
                    if p.source not in sources:
                        sources[p.source] = source_row(session, p.source, f"replay:{p.source}", "replay").id
                    store_posts(session, sources[p.source], [p.raw], now)
            app.pipeline.process_pending()
        answered = []
        while ri < len(replies) and replies[ri][0] <= now:
            answered.append(replies[ri][2])
            ri += 1
        if answered:
            with app.sessions.begin() as session:
                for p in answered:
                    store_posts(session, sources[p.source], [p.answered], now)
            while app.pipeline.record_replies():
                pass
        while ai < len(actions) and actions[ai].at <= now:
            errors.extend(_apply(app, actions[ai], now))
            ai += 1
        app.pipeline.tick()
        if app.cfg.main.shift:
            with app.sessions.begin() as session:
                send_handoffs(session, app.cfg.main, app.channels, last, now, dry_run=app.channels is None)
        last = now
        if app.channels is not None:
            deliver_due(app.sessions, app.channels, clock, app.cfg.main.alerts)
    return errors


def _incidents_of(session, post: str) -> list[int]:
    return session.scalars(
        select(IncidentPost.incident_id).join(Post, Post.id == IncidentPost.post_id)
        .where(Post.external_id == post).order_by(IncidentPost.incident_id)
    ).all()


def _apply(app, action: ReplayAction, now: datetime) -> list[str]:
    incidents = app.incidents
    with app.sessions.begin() as session:
        ids = _incidents_of(session, action.post)
        if not ids:
            return [f"{iso_local(action.at)} {action.action}: 帖文 {action.post} 不属于任何事件"]
        errors = []
        for incident_id in ids:
            try:
                if action.action == "ack":
                    incidents.actions.ack(session, incident_id, action.actor, now)
                elif action.action == "met":
                    incident = incidents.actions.get(session, incident_id)
                    if len(ids) > 1 and not any(c.name == action.clock and c.active for c in incident.clocks):
                        continue  # the post sits in several incidents; the clock names which
                    incidents.actions.met(session, incident_id, action.clock, action.actor, now, action.evidence)
                elif action.action == "close":
                    incidents.actions.close(session, incident_id, action.actor, now)
                elif action.action == "regrade":
                    incidents.actions.regrade(session, incident_id, action.level, action.actor, now)
                elif action.action == "false_positive":
                    incidents.actions.false_positive(session, incident_id, action.actor, now, action.note)
                elif action.action == "merge":
                    for other in _incidents_of(session, action.other):
                        if other != incident_id:
                            incidents.actions.merge(session, incident_id, other, action.actor, now)
                elif action.action == "split":
                    incidents.actions.split(session, incident_id, list(action.posts), action.actor, now)
                elif action.action == "confirm":
                    incidents.actions.confirm(session, incident_id, action.actor, now)
            except ActionError as e:
                errors.append(f"{iso_local(action.at)} {action.action}: {e}")
        return errors


def _result(app, cfg: Config) -> dict:
    tier_names = [t.name for t in cfg.main.tier]
    out_incidents = []
    with app.sessions() as session:
        for incident in session.scalars(select(Incident).order_by(Incident.id)):
            post_ids = session.scalars(
                select(Post.external_id)
                .join(IncidentPost, IncidentPost.post_id == Post.id)
                .where(IncidentPost.incident_id == incident.id)
                .order_by(Post.published_at, Post.id)
            ).all()
            clocks = session.scalars(
                select(ResponseClock).where(ResponseClock.incident_id == incident.id, ResponseClock.active.is_(True)).order_by(ResponseClock.due_at, ResponseClock.id)
            ).all()
            explained = session.execute(
                select(Post.external_id, MatchRow.terms, MatchRow.explanation)
                .join(IncidentPost, IncidentPost.post_id == Post.id)
                .join(MatchRow, (MatchRow.post_id == Post.id) & (MatchRow.rule == incident.rule))
                .where(IncidentPost.incident_id == incident.id)
                .order_by(Post.published_at, Post.id)
            ).all()
            regrades = [
                {"at": iso_local(e.at), "from": e.data.get("before"), "to": e.data.get("after"),
                 "clocks": [{"name": c["name"], "due_at": iso_local(parse_iso(c["due_at"])),
                             "met_at": iso_local(parse_iso(c["met_at"])) if c.get("met_at") else None}
                            for c in e.data.get("clocks", []) if isinstance(c, dict)]}
                for e in session.scalars(select(Event).where(Event.incident_id == incident.id, Event.kind == "regraded").order_by(Event.at, Event.id))
            ]
            steps = session.scalars(
                select(Notification)
                .where(Notification.incident_id == incident.id, Notification.kind != "opened")
                .order_by(Notification.scheduled_at, Notification.id)
            ).all()
            out_incidents.append(
                {
                    "id": incident.id,
                    "rule": incident.rule,
                    "severity": incident.severity,
                    # event mode: another story of this incident's event (its alerts went in digests)
                    **({"related_to": incident.related_to} if incident.related_to else {}),
                    "posts": list(post_ids),
                    "opened_at": iso_local(incident.opened_at),
                    "clocks": [
                        {
                            "name": c.name,
                            "due_at": iso_local(c.due_at),
                            "met_at": iso_local(c.met_at) if c.met_at else None,
                        }
                        for c in clocks
                    ],
                    "steps": [
                        {
                            "key": s.key,
                            "kind": s.kind,
                            "tier": tier_names[s.tier],
                            "at": iso_local(s.scheduled_at),
                            **({"superseded": True} if s.disposition == "superseded" else {}),
                        }
                        for s in steps
                    ],
                    # The clocks after every regrade, in order.
                    "regrades": regrades,
                    # Why each post is in: the terms and where they stand, as the rule engine saw it.
                    "matches": [
                        {"post": post_id, "terms": list(terms), "hits": (explanation or {}).get("hits", []),
                         "checks": (explanation or {}).get("checks", [])}
                        for post_id, terms, explanation in explained
                    ],
                }
            )
        alerts = [
            {"at": iso_local(n.fired_at), "tags": list(n.tags), "title": n.title, "body": readable(n.body),
             # over the alert budget: delivered at this time, inside a 新舆情事件汇总 digest
             **({"digest_at": iso_local(n.held_until)} if n.held_until else {})}
            for n in session.scalars(
                select(Notification)
                .where(Notification.disposition != "superseded")
                .order_by(Notification.fired_at, Notification.id)
            )
        ]
    return {"incidents": out_incidents, "alerts": alerts}


def dumps(result: dict) -> str:
    return json.dumps(result, ensure_ascii=False, indent=2) + "\n"
