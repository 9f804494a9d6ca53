"""Alert text (pure). Chinese, times in Beijing time, time left computed from `now`."""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.alerts.links import ACK_MARK
from monitor.alerts.templates import DEFAULT_TEMPLATES, Templates
from monitor.clock import show, show_delta, show_due, time_left
from monitor.incidents.escalation import ClockState, Step
from monitor.incidents.views import IncidentView


def clock_line(c: ClockState, now: datetime) -> str:
    if c.met_at is not None:
        return f"· {c.name}：{clock_status(c, now)}"
    return f"· {c.name}：{show_due(c.due_at)} 截止，{clock_status(c, now)}"


def render_all(
    kind: str,
    incident: IncidentView,
    clocks: list[ClockState],
    now: datetime,
    step: Step | None = None,
    tier_name: str = "",
    templates: Templates = DEFAULT_TEMPLATES,
    base_url: str = "",
) -> tuple[str, str, str]:
    if kind == "escalation" and step is not None and step.clock is None:
        kind = "unacked"
    if kind not in ("opened", "reminder", "escalation", "unacked") or (kind != "opened" and step is None):
        raise ValueError(f"unknown alert kind {kind!r}")
    target = step.clock if step is not None and step.clock else (clocks[0].name if clocks else "时限名称")
    step_context = None
    if step is not None:
        clock = next((c for c in clocks if c.name == step.clock), None)
        over = (now - clock.due_at) if clock else None
        step_context = {
            "kind": step.kind,
            "clock": step.clock,
            "tier": tier_name,
            "left": show_delta(clock.due_at - now) if clock else "",
            "overdue": (f"已超时 {show_delta(over)}" if over.total_seconds() >= 60 else "已到截止时间") if over is not None else "",
            "waited": show_delta(now - incident.opened_at),
        }
    context = {
        "incident": {
            "id": incident.id, "rule": incident.rule, "title": incident.title, "severity": incident.severity,
            "category": incident.category, "department": incident.department, "terms": list(incident.terms),
            "url": incident.first_post_url, "post_count": incident.post_count, "opened": show(incident.opened_at),
            "acked": incident.acked_at is not None,
        },
        "clocks": [
            {"name": c.name, "due": show_due(c.due_at), "status": clock_status(c, now), "line": clock_line(c, now)}
            for c in clocks
        ],
        "step": step_context,
        "ack_command": f"monitor incidents ack {incident.id}",
        "met_command": f"monitor incidents met {incident.id} {target} --evidence 链接",
        # With a console: the incident's page, and the one-tap link (delivery signs it per recipient).
        "links": {"incident": f"{base_url}/incidents/{incident.id}", "ack": ACK_MARK} if base_url else None,
        "now": show(now),
    }
    return templates.render(kind, context)


def clock_status(c: ClockState, now: datetime) -> str:
    if c.met_at is not None:
        return f"已于 {show(c.met_at)} 完成" + ("（超时完成）" if c.met_at > c.due_at else "")
    return time_left(c.due_at, now)


def render_reply(
    incident: IncidentView, post_title: str, status: str | None, text: str | None, url: str | None,
    replied_at: datetime, pending_clocks: list[str],
) -> tuple[str, str]:
    title = f"【{incident.severity}】事件 #{incident.id} 已有官方答复，请确认是否完成回应"
    lines = [
        f"事件：#{incident.id} {incident.rule}（{incident.severity}）　责任部门：{incident.department or '—'}",
        f"帖文：{post_title}",
        f"答复状态：{status or '已答复'}　答复时间：{show(replied_at)}",
    ]
    if text:
        lines.append(f"答复内容：{text[:200]}")
    if url:
        lines.append(f"链接：{url}")
    lines += [f"确认完成：monitor incidents met {incident.id} {name} --evidence {url or '链接'}" for name in pending_clocks]
    return title, "\n".join(lines)


def render_evidence(incident: IncidentView, clock: str, source: str, post_title: str, url: str | None, published: datetime,
                    base_url: str = "") -> tuple[str, str, str]:
    """An official channel published what may be the incident's answer: one tap takes it."""
    title = f"【{incident.severity}】事件 #{incident.id} 官方渠道已发布，请确认是否作为「{clock}」"
    facts = [
        f"事件：#{incident.id} {incident.title}（{incident.severity}）　责任部门：{incident.department or '—'}",
        f"官方渠道：{source}　发布时间：{show(published)}",
        f"标题：{post_title}",
    ]
    if url:
        facts.append(f"链接：{url}")
    command = f"monitor incidents confirm {incident.id}"
    if base_url:
        body = "\n".join(facts + [f"一键采纳：{ACK_MARK}", f"查看事件：{base_url}/incidents/{incident.id}"])
        markdown = "\n\n".join([f"#### {title}", *facts, f"[**✅ 采纳为「{clock}」**]({ACK_MARK})　[查看事件]({base_url}/incidents/{incident.id})"])
    else:
        body = "\n".join(facts + [f"采纳：{command}"])
        markdown = "\n\n".join([f"#### {title}", *facts, f"> 采纳：`{command}`"])
    return title, body, markdown


def render_progress(incident: IncidentView, clocks: list[ClockState], post_title: str, post_url: str | None,
                    reopened: list[str]) -> tuple[str, str]:
    """A post joined an incident whose clocks were all answered: nothing joins silently."""
    title = f"【{incident.severity}】事件有新进展 #{incident.id}：{incident.rule}"
    lines = [
        f"事件：#{incident.id} {incident.title}（{incident.severity}）　责任部门：{incident.department or '—'}",
        f"新帖文：{post_title}",
    ]
    if post_url:
        lines.append(f"链接：{post_url}")
    lines.append(f"帖文共 {incident.post_count} 条；各回应时限此前均已完成。")
    if reopened:
        lines.append("已为新一轮舆情重新计时：" + "、".join(reopened))
        lines += [f"    {clock_line(c, c.started_at)}" for c in clocks if c.name in reopened]
    else:
        lines.append(f"请研判是否需要再次回应；详情：monitor incidents show {incident.id}")
    return title, "\n".join(lines)


def render_source_health(
    kind: str, name: str, url: str, since: datetime, now: datetime, failures: int, last_error: str | None,
    last_success: datetime | None, usual_gap: timedelta | None, last_new: datetime | None = None,
) -> tuple[str, str]:
    """Alerts about a source itself: failing, gone quiet, or working again."""
    if kind == "failing":
        title = f"【数据源异常】来源「{name}」连续 {failures} 次抓取失败"
    elif kind == "quiet":
        usual = f"（通常约 {show_delta(usual_gap)} 就有新帖文）" if usual_gap else ""
        title = f"【数据源沉寂】来源「{name}」已 {show_delta(now - (last_new or since))} 没有新帖文{usual}"
    else:
        title = f"【数据源恢复】来源「{name}」已恢复正常"
    lines = [f"来源：{name}", f"地址：{url}", f"最近成功：{show(last_success)}"]
    if kind == "failing" and last_error:
        lines.append(f"最近错误：{last_error}")
    if kind == "recovered":
        lines.append(f"异常开始于：{show(since)}，持续 {show_delta(now - since)}")
    else:
        lines.append(f"检查：monitor sources test {name}")
    return title, "\n".join(lines)


def render_handoff(shift_name: str, at: datetime, people: list[str], incidents: list[tuple[IncidentView, list[ClockState]]], now: datetime) -> tuple[str, str]:
    """The digest the incoming officer receives at a shift change."""
    title = f"【交接班】{shift_name or '值班'} {show(at)} 接班：未关闭事件 {len(incidents)} 起"
    lines = [f"接班：{'、'.join(people) or '—'}　时间：{show(at)}（北京时间）"]
    if not incidents:
        lines.append("当前没有未关闭的舆情事件。")
    for view, clocks in incidents:
        acked = f"已确认（{show(view.acked_at)}）" if view.acked_at else "未确认"
        lines.append(f"\n#{view.id}【{view.severity}】{view.rule}：{view.title}（{view.department or '—'}，{acked}）")
        lines.extend(f"  {clock_line(c, now)}" for c in clocks)
    lines.append("\n查看：monitor incidents list")
    return title, "\n".join(lines)
