"""`monitor alerts …` and `monitor roster …`: what was sent to whom, and who is on duty."""

from __future__ import annotations

import sys
from collections import Counter

from monitor.alerts.links import readable
from monitor.cli.common import command, group, open_db
from monitor.clock import SystemClock, parse_iso, show
from monitor.config import load


def register(sub) -> None:
    al = group(sub, "alerts", "告警：发了什么、发给谁、何时、是否送达", "alerts_command")
    q = command(al, "list", "最近的告警及其投递状态", _alerts, database=True)
    q.add_argument("--limit", type=int, default=30, help="最多列出几条（默认 30）")
    q.add_argument("--incident", type=int, help="只看某个事件的告警")
    q.add_argument("--failed", action="store_true", help="只看未送达的")
    q = command(al, "show", "一条告警的全文、每个投递目标与每次尝试", _alerts, database=True)
    q.add_argument("id", type=int)

    ro = group(sub, "roster", "值班表：谁在值班、谁会收到哪一级告警", "roster_command")
    command(ro, "now", "现在的值班安排", _roster)
    q = command(ro, "at", "某一时刻的值班安排", _roster)
    q.add_argument("time", help="时间，如 2026-10-01T20:00（北京时间）或带时区的 ISO 8601")


DELIVERY = {"pending": "待发送", "sending": "发送中", "sent": "已送达", "failed": "已放弃", "digest": "已并入汇总", "dropped": "已回应，未发送"}


DISPOSITION = {"superseded": "已被后续提醒取代，未发送", "dry_run": "演练，未发送"}


def _alerts(args) -> int:
    from sqlalchemy import select

    from monitor.store.models import DeliveryAttempt, Notification, Outbox

    _cfg, _engine_, sessions = open_db(args)
    with sessions() as session:
        if args.alerts_command == "show":
            note = session.get(Notification, args.id)
            if note is None:
                print(f"告警 {args.id} 不存在", file=sys.stderr)
                return 1
            about = f"事件 #{note.incident_id}" if note.incident_id else "系统"
            print(f"告警 {note.id}（{about}，{note.kind}，第 {note.tier + 1} 级）：{note.title}")
            print(f"  计划 {show(note.scheduled_at)}　发出 {show(note.fired_at)}　标签 {', '.join(note.tags)}")
            if note.disposition != "sent":
                print(f"  {DISPOSITION.get(note.disposition, note.disposition)}")
            print("  正文：")
            for line in readable(note.body).splitlines():
                print(f"    {line}")
            for row in session.scalars(select(Outbox).where(Outbox.notification_id == note.id).order_by(Outbox.id)):
                print(f"  → {row.target_display}（{row.tag}）：{DELIVERY.get(row.state, row.state)}，尝试 {row.attempts} 次"
                      + (f"，送达 {show(row.sent_at)}" if row.sent_at else ""))
                for attempt in session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.outbox_id == row.id).order_by(DeliveryAttempt.id)):
                    print(f"      {show(attempt.at)} {'成功' if attempt.ok else '失败：' + (attempt.error or '')}")
            return 0
        q = select(Notification).order_by(Notification.fired_at.desc(), Notification.id.desc()).limit(args.limit)
        if args.incident:
            q = q.where(Notification.incident_id == args.incident)
        notes = session.scalars(q).all()
        if not notes:
            print("没有告警")
            return 0
        outbox: dict[int, list] = {}  # one query for all the deliveries listed, not one per alert
        for row in session.scalars(select(Outbox).where(Outbox.notification_id.in_([n.id for n in notes]))):
            outbox.setdefault(row.notification_id, []).append(row)
        for note in notes:
            rows = outbox.get(note.id, [])
            if args.failed and all(r.state in ("sent", "digest", "dropped") for r in rows):
                continue
            states = Counter(DELIVERY.get(r.state, r.state) for r in rows)
            summary = "、".join(f"{k} {v}" for k, v in states.items()) or DISPOSITION.get(note.disposition, "无投递目标")
            print(f"{note.id:>5}  {show(note.fired_at)}  {note.title}")
            print(f"       → {', '.join(note.tags)}：{summary}")
    return 0


def _roster(args) -> int:
    from monitor.alerts.roster import next_shift_start, on_duty, recipients, shifts_on_duty

    cfg = load(args.config)
    main = cfg.main
    if args.roster_command == "now":
        at = SystemClock().now()
    else:
        try:
            at = parse_iso(args.time)
        except ValueError:
            print(f"无法识别的时间：{args.time}（应为如 2026-10-01T20:00）", file=sys.stderr)
            return 2
    print(f"值班安排：{show(at)}（北京时间）")
    departments = sorted({d for s in main.shift for d in s.departments})
    for index, tier in enumerate(main.tier):
        for department in ["", *departments]:
            shifts = shifts_on_duty(main, tier.name, department, at)
            if department and not any(department in s.departments for s in shifts):
                continue  # this department has no shift of its own for this tier now
            people = on_duty(main, tier.name, department, at)
            scope = f"（{department}）" if department else ""
            who = "、".join(p.name for p in people) if people else "无人排班，发给该级默认地址"
            shift_names = "、".join(s.name or f"{s.start}–{s.end}" for s in shifts)
            print(f"  第 {index + 1} 级 {tier.name}{scope}：{who}" + (f"（{shift_names}）" if shift_names else ""))
            print(f"      告警标签：{', '.join(recipients(main, index, department, at))}")
    upcoming = next_shift_start(main, at, main.tier[0].name) if main.shift else None
    if upcoming:
        print(f"下次交接班：{show(upcoming)}")
    return 0
