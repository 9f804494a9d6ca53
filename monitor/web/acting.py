"""Who may do what, and doing it: the one door from the console, the API and one-tap links
into monitor.incidents.actions. Each call is one transaction and returns what a person reads."""

from __future__ import annotations

from monitor.accounts import Principal
from monitor.clock import show
from monitor.incidents.actions import ACTION_NAMES, Done
from monitor.incidents.record import ActionError
from monitor.web.context import Console

class Forbidden(Exception):
    """The user's role may not do this (HTTP 403)."""


def may(console: Console, who: Principal, action: str) -> bool:
    return console.web.may.allows(who.role, action)


def perform(console: Console, who: Principal, actor: str, incident_id: int, action: str, **params) -> Done:
    """Check the role and the department, then act. Raises Forbidden, or ActionError with the
    reason in Chinese."""
    if action not in ACTION_NAMES:
        raise ActionError(f"未知操作「{action}」")
    if not may(console, who, action):
        raise Forbidden(f"{who.role}无权执行「{ACTION_NAMES[action]}」")
    actions = console.incidents().actions
    with console.writing(), console.sessions.begin() as session:
        incident = actions.get(session, incident_id)  # held: the identity map keeps it for the action's own get
        _in_scope(console, who, incident)
        posts = [p for p in str(params.get("posts") or "").replace("，", ",").replace(",", " ").split() if p]
        other = _number(params["other"], "要并入的事件编号") if params.get("other") not in (None, "") else None
        return actions.do(session, incident_id, action, actor, console.clock.now(), clock=(params.get("clock") or "").strip(),
                          evidence=_text(params.get("evidence")), note=_text(params.get("note")),
                          level=(params.get("level") or "").strip(), other=other, posts=posts)


def _in_scope(console: Console, who: Principal, incident) -> None:
    """属地管理: an account of a department acts on that department's incidents (and on those
    no department owns yet); 管理员 and accounts without a department act on all."""
    if not who.department or who.role == "管理员" or not console.web.department_scope:
        return
    if incident.department and incident.department != who.department:
        raise Forbidden(f"事件 #{incident.id} 由{incident.department}负责，{who.department}的账号不能处置")


def evidence_post(note) -> str:
    """The post an evidence alert proposes: the last part of its key (notices.evidence)."""
    return note.key.rpartition(":")[2]


def link_proposal(session, console: Console, row, incident):
    """The official release an evidence alert's link takes as the answer, or None for an
    alert whose link acknowledges. Raises LinkError when there is nothing left to take."""
    from monitor.alerts.links import LinkError
    from monitor.store.models import Notification

    note = session.get(Notification, row.notification_id)
    if note is None or note.kind != "evidence":
        return None
    post = evidence_post(note)
    found = next((e for e in console.incidents().actions.proposals(session, incident.id) if str(e.data.get("post")) == post), None)
    if found is None:
        raise LinkError(f"事件 #{incident.id} 的「{note.clock}」已登记完成（或该发布已采纳）：没有再次执行任何操作")
    return found.data


def act_by_link(console: Console, claim, actor: str) -> Done:
    """A one-tap link acts once: it acknowledges, or on an evidence alert takes the official
    release as the answer. The link is spent in the same transaction as the action, so two
    taps (or two instances) cannot both act."""
    from sqlalchemy.exc import IntegrityError

    from monitor.store.models import Notification, Outbox, UsedLink
    from monitor.alerts.links import LinkError

    with console.writing(), console.sessions.begin() as session:
        now = console.clock.now()
        spent = session.get(UsedLink, claim.outbox_id)
        if spent is not None:
            raise LinkError(f"此链接已于 {show(spent.used_at)} 使用过：没有再次执行任何操作")
        row = session.get(Outbox, claim.outbox_id)
        note = session.get(Notification, row.notification_id) if row is not None else None
        if note is None or note.incident_id != claim.incident_id:
            raise LinkError("链接无效（与告警记录不符）：没有执行任何操作")
        try:
            with session.begin_nested():
                session.add(UsedLink(outbox_id=claim.outbox_id, used_at=now, incident_id=claim.incident_id))
                session.flush()
        except IntegrityError:
            raise LinkError("此链接刚刚已被使用：没有再次执行任何操作") from None
        if note.kind == "evidence":
            return console.incidents().actions.do(session, claim.incident_id, "confirm", actor, now,
                                                  posts=[evidence_post(note)])
        console.incidents().actions.ack(session, claim.incident_id, actor, now)
    return Done(claim.incident_id, f"事件 #{claim.incident_id} 已确认（{actor}，{show(now)}）")


def _text(value) -> str | None:
    value = (value or "").strip() if isinstance(value, str) or value is None else str(value)
    return value[:2000] or None


def _number(value, what: str) -> int:
    try:
        return int(str(value).strip().lstrip("#"))
    except (TypeError, ValueError):
        raise ActionError(f"{what}应为数字") from None
