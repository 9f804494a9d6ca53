"""`monitor incidents …`: what the duty officer reads and does; actions go through
monitor.incidents.actions, the layer every front end calls."""

from __future__ import annotations

import getpass
import json
import os
import sys

from monitor.cli.common import command, group, open_db
from monitor.clock import SystemClock, show, show_delta, show_due
from monitor.incidents.words import EVENT_NAMES, beijing, state_name


def register(sub) -> None:
    inc = group(sub, "incidents", "舆情事件：查看与处置", "incidents_command")
    q = command(inc, "list", "列出事件（默认未关闭的）", _incidents, database=True)
    q.add_argument("--all", action="store_true", help="包括已关闭的事件")
    for name, help_text in (("show", "查看事件详情与时间线"), ("ack", "确认收到"), ("close", "关闭事件")):
        q = command(inc, name, help_text, _incidents, database=True)
        q.add_argument("id", type=int)
        if name != "show":
            q.add_argument("--actor", default=None, help="操作人（默认当前系统用户）")
    q = command(inc, "met", "登记某一时限已完成回应", _incidents, database=True)
    q.add_argument("id", type=int)
    q.add_argument("clock", help="时限名称，如 发布权威信息")
    q.add_argument("--evidence", help="回应的链接或说明")
    q.add_argument("--actor", default=None)
    q = command(inc, "confirm", "采纳官方渠道的发布作为回应（默认最新的一条待采纳发布）", _incidents, database=True)
    q.add_argument("id", type=int)
    q.add_argument("--post", dest="posts", type=lambda v: [v], default=None, metavar="N", help="采纳哪条发布（帖文编号，见 incidents show）")
    q.add_argument("--actor", default=None)
    q = command(inc, "false-positive", "标记为误报（不是需要回应的舆情）：关闭事件，报表单列", _incidents, database=True)
    q.add_argument("id", type=int)
    q.add_argument("--note", help="说明")
    q.add_argument("--actor", default=None)
    q = command(inc, "merge", "把事件 B 并入事件 A（同一真实事件被分成了两个）", _incidents, database=True)
    q.add_argument("id", type=int, help="保留的事件 A")
    q.add_argument("other", type=int, help="并入并关闭的事件 B")
    q.add_argument("--actor", default=None)
    q = command(inc, "split", "把若干帖文从事件中拆出，成为新事件", _incidents, database=True)
    q.add_argument("id", type=int)
    q.add_argument("posts", nargs="+", help="帖文 id（来源中的 id 或数据库编号）")
    q.add_argument("--actor", default=None)
    q = command(inc, "regrade", "调整事件级别并重算时限", _incidents, database=True)
    q.add_argument("id", type=int)
    q.add_argument("level", help="特别重大 | 重大 | 较大 | 一般")
    q.add_argument("--actor", default=None)


def _incidents(args) -> int:
    from monitor.incidents.service import ActionError, Alerting, Incidents

    cfg, _engine_, sessions = open_db(args)
    service = Incidents(cfg.main, Alerting(channels=None))
    now = SystemClock().now()
    command = args.incidents_command
    actor = getattr(args, "actor", None) or os.environ.get("SUDO_USER") or getpass.getuser()
    try:
        if command == "list":
            return _incidents_list(sessions, service, now, args.all)
        if command == "show":
            return _incidents_show(sessions, service, args.id, now)
        with sessions.begin() as session:
            done = service.actions.do(
                session, args.id, command.replace("-", "_"), actor, now, clock=getattr(args, "clock", ""),
                evidence=getattr(args, "evidence", None), note=getattr(args, "note", None), level=getattr(args, "level", ""),
                other=getattr(args, "other", None), posts=getattr(args, "posts", None))
            print(done.message)
    except ActionError as e:
        print(f"无法执行：{e}", file=sys.stderr)
        return 1
    return 0


def _incidents_list(sessions, service, now, include_closed: bool) -> int:
    from sqlalchemy import select

    from monitor.alerts.render import time_left
    from monitor.store.models import Incident

    with sessions() as session:
        q = select(Incident).order_by(Incident.id.desc())
        if not include_closed:
            q = q.where(Incident.state != "closed")
        rows = session.scalars(q).all()
        if not rows:
            print("没有未关闭的事件" if not include_closed else "没有事件")
            return 0
        for inc in rows:
            print(f"#{inc.id}【{inc.severity}】{state_name(inc)} {inc.rule}：{inc.title[:40]}（{inc.department or '—'}，{inc.post_count} 条）")
            for c in service.clock_states(inc):
                if c.met_at:
                    print(f"    {c.name}：已完成 {show(c.met_at)}")
                else:
                    print(f"    {c.name}：{show_due(c.due_at)} 截止，{time_left(c.due_at, now)}")
    return 0


def _print_heat(session, service, inc, now) -> None:
    from sqlalchemy import select

    from monitor.incidents.clocks import clock_start
    from monitor.incidents.heat import curve
    from monitor.store.models import IncidentPost, Post

    heat = service.heat(session, inc, now)
    times = [clock_start(p, f) for p, f in session.execute(
        select(Post.published_at, Post.fetched_at).join(IncidentPost, IncidentPost.post_id == Post.id).where(IncidentPost.incident_id == inc.id))]
    end = now if inc.state != "closed" else max(times, default=now)
    bars, width = curve(times, inc.started_at, end)
    print(f"  热度：{heat.describe()}")
    print(f"  热度曲线（每格 {show_delta(width)}，{show(inc.started_at)} 起）：|{bars}|")


def _print_posts(session, inc, limit: int = 50) -> None:
    from sqlalchemy import select

    from monitor.store.models import IncidentPost, Match, Post, Source

    rows = session.execute(
        select(Post.id, Source.name, Post.external_id, Post.title, Post.body, Post.published_at, Post.fetched_at, Post.time_note)
        .join(IncidentPost, IncidentPost.post_id == Post.id).join(Source, Source.id == Post.source_id)
        .where(IncidentPost.incident_id == inc.id).order_by(Post.id).limit(limit)
    ).all()
    # Event mode puts a post matching several rules in one incident: say which others it matched.
    also: dict[int, list[str]] = {}
    for post_id, rule in session.execute(
        select(Match.post_id, Match.rule).where(Match.post_id.in_([r[0] for r in rows]), Match.rule != inc.rule).order_by(Match.id)
    ):
        also.setdefault(post_id, []).append(rule)
    print(f"  帖文（#编号用于 split）：{'' if inc.post_count <= limit else f'前 {limit} 条'}")
    for post_id, source, external_id, title, body, published, fetched, note in rows:
        when = show(published) if published else f"{show(fetched)}（抓取）"
        print(f"    #{post_id}【{source}】{when} {(title or body or '')[:50]}")
        if note:
            print(f"        注：{note}")
        if post_id in also:
            print(f"        也命中规则：{'、'.join(dict.fromkeys(also[post_id]))}（按内容归并时一条帖文只进一个事件）")


def _incidents_show(sessions, service, incident_id: int, now) -> int:
    from sqlalchemy import select

    from monitor.alerts.render import clock_line
    from monitor.store.models import Event, Notification

    with sessions() as session:
        inc = service.actions.get(session, incident_id)
        print(f"事件 #{inc.id}【{inc.severity}】{state_name(inc)}")
        print(f"  规则：{inc.rule}　分类：{inc.category or '—'}　责任部门：{inc.department or '—'}")
        print(f"  首条：{inc.title}")
        if inc.first_post_url:
            print(f"  链接：{inc.first_post_url}")
        print(f"  命中词：{'、'.join(inc.terms)}　帖文：{inc.post_count} 条")
        if inc.related_to:
            print(f"  关联：与 #{inc.related_to} 是同一事件的另一条线索，告警随汇总发送（可 merge {inc.related_to} {inc.id} 合并）")
        print(f"  起算：{show(inc.started_at)}　发现：{show(inc.opened_at)}")
        _print_heat(session, service, inc, now)
        _print_posts(session, inc)
        print("  回应时限：")
        for c in service.clock_states(inc):
            print(f"    {clock_line(c, now)}")
        from monitor.incidents.record import official_source

        proposals = service.actions.proposals(session, inc.id)
        if proposals:
            print("  官方渠道的发布（待采纳，monitor incidents confirm ID [--post N]）：")
            for ev in proposals:
                d = ev.data
                print(f"    帖文 #{d.get('post')}「{d.get('clock')}」《{d.get('title', '')}》{d.get('url') or ''}（{official_source(ev.actor)}）")
        print("  时间线：")
        for ev in session.scalars(select(Event).where(Event.incident_id == inc.id).order_by(Event.at, Event.id)):
            detail = json.dumps(beijing(ev.data), ensure_ascii=False) if ev.data else ""
            print(f"    {show(ev.at)} {EVENT_NAMES.get(ev.kind, ev.kind)}（{ev.actor}）{detail}")
        print("  已发出的提醒：")
        for n in session.scalars(select(Notification).where(Notification.incident_id == inc.id).order_by(Notification.fired_at, Notification.id)):
            mark = "" if n.disposition == "sent" else f"（{ {'superseded': '已被后续提醒取代', 'dry_run': '演练未发送'}.get(n.disposition, n.disposition)}）"
            print(f"    {show(n.fired_at)} {n.title}{mark}")
    return 0
