"""Reading one period's facts from the store into a Report.

Set-based queries only: a week can hold a million posts, and nothing here loads them.
Clock outcomes are judged as they stand now: a clock due in the week and met after it
ended counts as met late, which is what 问责 asks about.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from monitor.clock import SHANGHAI
from monitor.config import MainConfig
from monitor.reports.model import CHANGE, DATE, HOURS, INT, MINUTES, PCT, TEXT, TIME, Column, Report, Table
from monitor.reports.period import Period
from monitor.reports.stats import change, percentile, rate
from monitor.severity import SEVERITIES
from monitor.store.models import Event, Incident, IncidentPost, Match, Post, ResponseClock, Source

ON_TIME, LATE, OVERDUE, PENDING = "按时完成", "超时完成", "超时未完成", "未到期"
EVENT_NAMES = {
    "opened": "发现（首条帖文）",
    "acknowledged": "确认收到",
    "clock_met": "登记回应",
    "closed": "关闭",
    "regraded": "调整级别",
    "start_moved": "起算时间提前",
    "false_positive": "标记为误报",
}


@dataclass(frozen=True)
class ClockFact:
    incident_id: int
    department: str
    severity: str
    name: str
    started_at: datetime
    due_at: datetime
    met_at: datetime | None
    met_by: str | None
    rule: str
    title: str

    def outcome(self, now: datetime) -> str:
        if self.met_at is not None:
            return ON_TIME if self.met_at <= self.due_at else LATE
        return OVERDUE if self.due_at <= now else PENDING


def _incident_counts(session: Session, period: Period) -> dict[str, int]:
    rows = session.execute(
        select(Incident.severity, func.count(Incident.id))
        .where(Incident.opened_at >= period.start, Incident.opened_at < period.end)
        .group_by(Incident.severity)
    ).all()
    return dict(rows)


def _count_posts(session: Session, period: Period) -> int:
    return session.scalar(
        select(func.count(Post.id)).where(Post.fetched_at >= period.start, Post.fetched_at < period.end)
    ) or 0


def _clock_facts(session: Session, period: Period) -> list[ClockFact]:
    rows = session.execute(
        select(
            ResponseClock.incident_id, Incident.department, Incident.severity, ResponseClock.name, ResponseClock.started_at,
            ResponseClock.due_at, ResponseClock.met_at, ResponseClock.met_by, Incident.rule, Incident.title,
        )
        .join(Incident, Incident.id == ResponseClock.incident_id)
        # a 误报 (false positive) owed no answer: its clocks are not counted as late
        .where(ResponseClock.active.is_(True), ResponseClock.due_at >= period.start, ResponseClock.due_at < period.end,
               Incident.false_positive.is_(False))
        .order_by(ResponseClock.due_at, ResponseClock.id)
    ).all()
    return [
        ClockFact(r[0], r[1] or "（未指定）", r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9])
        for r in rows
    ]


def _hours(delta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def collect(session: Session, cfg: MainConfig, period: Period, now: datetime) -> Report:
    previous = period.previous()
    in_period = and_(Incident.opened_at >= period.start, Incident.opened_at < period.end)
    by_severity, before_severity = _incident_counts(session, period), _incident_counts(session, previous)
    total, total_before = sum(by_severity.values()), sum(before_severity.values())
    posts, posts_before = _count_posts(session, period), _count_posts(session, previous)
    matched = session.scalar(
        select(func.count(func.distinct(Match.post_id)))
        .join(Post, Post.id == Match.post_id)
        .where(Post.fetched_at >= period.start, Post.fetched_at < period.end)
    ) or 0
    closed = session.scalar(
        select(func.count(Incident.id)).where(Incident.closed_at >= period.start, Incident.closed_at < period.end)
    ) or 0
    false_positives = session.scalar(
        select(func.count(Incident.id)).where(Incident.closed_at >= period.start, Incident.closed_at < period.end,
                                              Incident.false_positive.is_(True))
    ) or 0
    facts = _clock_facts(session, period)
    outcomes = Counter(f.outcome(now) for f in facts)

    # ---- acknowledgement -----------------------------------------------------------
    acks = session.execute(select(Incident.severity, Incident.opened_at, Incident.acked_at).where(in_period)).all()
    ack_minutes: dict[str, list[float]] = defaultdict(list)
    unacked: Counter = Counter()
    for severity, opened_at, acked_at in acks:
        if acked_at is None:
            unacked[severity] += 1
        else:
            ack_minutes[severity].append(round((acked_at - opened_at).total_seconds() / 60, 1))
    all_ack = [m for ms in ack_minutes.values() for m in ms]

    summary = Table("summary", "概况", [Column("指标", TEXT, 20), Column("本期", INT, 10), Column("上期", INT, 10), Column("变化", CHANGE, 10)])
    summary.rows = [
        ["新增舆情事件", total, total_before, change(total, total_before)],
        *[[f"　其中{s}", by_severity.get(s, 0), before_severity.get(s, 0), change(by_severity.get(s, 0), before_severity.get(s, 0))] for s in SEVERITIES],
        ["采集帖文", posts, posts_before, change(posts, posts_before)],
        ["命中关键词的帖文", matched, None, None],
        ["本期关闭事件", closed, None, None],
        ["　其中标记为误报", false_positives, None, None],
        ["本期到期回应时限", len(facts), None, None],
        ["　按时完成", outcomes[ON_TIME], None, None],
        ["　超时完成", outcomes[LATE], None, None],
        ["　超时未完成", outcomes[OVERDUE], None, None],
    ]

    severity = Table("severity", "按级别", [Column("级别", TEXT, 10), Column("事件数", INT), Column("上期", INT), Column("变化", CHANGE),
                                          Column("已确认", INT), Column("未确认", INT), Column("确认用时中位数（分钟）", MINUTES, 14), Column("确认用时P90（分钟）", MINUTES, 14)])
    severity.rows = [
        [s, by_severity.get(s, 0), before_severity.get(s, 0), change(by_severity.get(s, 0), before_severity.get(s, 0)),
         len(ack_minutes[s]), unacked[s], percentile(ack_minutes[s], 50), percentile(ack_minutes[s], 90)]
        for s in SEVERITIES
    ]
    severity.rows.append(["合计", total, total_before, change(total, total_before), len(all_ack), sum(unacked.values()),
                          percentile(all_ack, 50), percentile(all_ack, 90)])

    daily = Table("daily", "每日新增事件", [Column("日期", DATE, 12), *[Column(s, INT, 8) for s in SEVERITIES], Column("合计", INT, 8)])
    per_day: dict = defaultdict(Counter)
    for sev, opened_at in session.execute(select(Incident.severity, Incident.opened_at).where(in_period)).all():
        per_day[opened_at.astimezone(SHANGHAI).date()][sev] += 1
    for day in period.days:
        counts = [per_day[day][s] for s in SEVERITIES]
        daily.rows.append([day, *counts, sum(counts)])

    category = Table("category", "按分类", [Column("分类", TEXT, 16), Column("事件数", INT)])
    category.rows = [
        [c or "（未分类）", n]
        for c, n in session.execute(
            select(Incident.category, func.count(Incident.id)).where(in_period).group_by(Incident.category).order_by(func.count(Incident.id).desc(), Incident.category)
        ).all()
    ]

    clocks = Table("clocks", "回应时限完成情况", [
        Column("时限", TEXT, 14), Column("时长（小时）", HOURS), Column("本期到期", INT), Column(ON_TIME, INT), Column(LATE, INT),
        Column(OVERDUE, INT), Column(PENDING, INT), Column("按时率", PCT), Column("完成用时中位数（小时）", HOURS, 14), Column("完成用时P90（小时）", HOURS, 14),
    ], note="按时率 = 按时完成 ÷ 已到期（按时完成 + 超时完成 + 超时未完成）；完成用时自首条帖文起算。")
    names = [c.name for c in cfg.clock] + sorted({f.name for f in facts} - {c.name for c in cfg.clock})
    within = {c.name: _hours(c.within) for c in cfg.clock if c.within is not None}
    for name in names:
        mine = [f for f in facts if f.name == name]
        count = Counter(f.outcome(now) for f in mine)
        durations = [_hours(f.met_at - f.started_at) for f in mine if f.met_at is not None]
        due = count[ON_TIME] + count[LATE] + count[OVERDUE]
        clocks.rows.append([name, within.get(name), len(mine), count[ON_TIME], count[LATE], count[OVERDUE], count[PENDING],
                            rate(count[ON_TIME], due), percentile(durations, 50), percentile(durations, 90)])

    department = Table("department", "按责任部门", [
        Column("责任部门", TEXT, 20), Column("新增事件", INT), Column("本期到期时限", INT), Column(ON_TIME, INT), Column(LATE, INT),
        Column(OVERDUE, INT), Column("按时率", PCT),
    ])
    new_by_dept = dict(session.execute(select(Incident.department, func.count(Incident.id)).where(in_period).group_by(Incident.department)).all())
    new_by_dept = {(k or "（未指定）"): v for k, v in new_by_dept.items()}
    by_dept: dict[str, Counter] = defaultdict(Counter)
    for f in facts:
        by_dept[f.department][f.outcome(now)] += 1
    for dept in sorted(set(by_dept) | set(new_by_dept), key=lambda d: (-new_by_dept.get(d, 0), d)):
        c = by_dept[dept]
        due = c[ON_TIME] + c[LATE] + c[OVERDUE]
        department.rows.append([dept, new_by_dept.get(dept, 0), sum(c.values()), c[ON_TIME], c[LATE], c[OVERDUE], rate(c[ON_TIME], due)])

    overdue = Table("overdue", "超时的回应时限", [
        Column("事件", INT, 8), Column("级别", TEXT, 8), Column("标题", TEXT, 40), Column("责任部门", TEXT, 16), Column("时限", TEXT, 14),
        Column("截止时间", TIME, 18), Column("状态", TEXT, 12), Column("超时（小时）", HOURS), Column("登记人", TEXT, 10),
    ])
    for f in facts:
        outcome = f.outcome(now)
        if outcome in (LATE, OVERDUE):
            late_by = (f.met_at or now) - f.due_at
            overdue.rows.append([f.incident_id, f.severity, f.title, f.department, f.name, f.due_at, outcome, _hours(late_by), f.met_by or ""])

    source = Table("source", "按来源", [Column("来源", TEXT, 24), Column("涉及事件", INT), Column("本期帖文", INT)])
    incidents_by_source = dict(session.execute(
        select(Post.source_id, func.count(func.distinct(IncidentPost.incident_id)))
        .join(IncidentPost, IncidentPost.post_id == Post.id)
        .join(Incident, Incident.id == IncidentPost.incident_id)
        .where(in_period)
        .group_by(Post.source_id)
    ).all())
    posts_by_source = dict(session.execute(
        select(Post.source_id, func.count(Post.id))
        .where(Post.fetched_at >= period.start, Post.fetched_at < period.end)
        .group_by(Post.source_id)
    ).all())
    sources = session.scalars(select(Source).order_by(Source.name)).all()
    for s in sorted(sources, key=lambda s: (-incidents_by_source.get(s.id, 0), -posts_by_source.get(s.id, 0), s.name)):
        if incidents_by_source.get(s.id) or posts_by_source.get(s.id):
            source.rows.append([s.name, incidents_by_source.get(s.id, 0), posts_by_source.get(s.id, 0)])

    top, timeline = _top_incidents(session, in_period)

    health = Table("source_health", "来源运行状况", [
        Column("来源", TEXT, 24), Column("状态", TEXT, 14), Column("本期帖文", INT), Column("连续失败", INT),
        Column("最近成功", TIME, 18), Column("最近错误", TEXT, 40),
    ])
    for s in sources:
        state = "正常" if not s.consecutive_failures else f"失败（连续 {s.consecutive_failures} 次）"
        health.rows.append([s.name, state, posts_by_source.get(s.id, 0), s.consecutive_failures, s.last_success_at, s.last_error or ""])

    due_count = outcomes[ON_TIME] + outcomes[LATE] + outcomes[OVERDUE]
    on_time_rate = rate(outcomes[ON_TIME], due_count)
    headline = [
        f"本期（{period.title}）新增舆情事件 {total} 起（上期 {total_before} 起）："
        + "、".join(f"{s} {by_severity.get(s, 0)} 起" for s in SEVERITIES) + "。",
        f"本期到期回应时限 {due_count} 个，按时完成 {outcomes[ON_TIME]} 个"
        + (f"，按时率 {on_time_rate:.1%}" if on_time_rate is not None else "")
        + f"；超时完成 {outcomes[LATE]} 个，超时未完成 {outcomes[OVERDUE]} 个。",
        f"采集帖文 {posts} 条，其中命中关键词 {matched} 条；来源 {len(sources)} 个，"
        f"当前异常 {sum(1 for s in sources if s.consecutive_failures)} 个。",
    ]
    tables = [summary, clocks, severity, daily, department, category, source, overdue, top, timeline, health]
    return Report(period, previous, now, headline, tables)


def _top_incidents(session: Session, in_period) -> tuple[Table, Table]:
    top = Table("top", "重点事件（按帖文数）", [
        Column("事件", INT, 8), Column("级别", TEXT, 8), Column("规则", TEXT, 14), Column("标题", TEXT, 40), Column("命中词", TEXT, 18),
        Column("帖文数", INT), Column("发现时间", TIME, 18), Column("状态", TEXT, 10), Column("责任部门", TEXT, 16),
    ])
    states = {"open": "待处置", "acknowledged": "已确认", "closed": "已关闭"}
    incidents = session.scalars(
        select(Incident).where(in_period).order_by(Incident.post_count.desc(), Incident.id).limit(10)
    ).all()
    for inc in incidents:
        top.rows.append([inc.id, inc.severity, inc.rule, inc.title, "、".join(inc.terms or ()), inc.post_count,
                         inc.opened_at, states.get(inc.state, inc.state), inc.department])
    timeline = Table("timeline", "重点事件时间线", [
        Column("事件", INT, 8), Column("时间", TIME, 18), Column("事项", TEXT, 16), Column("操作人", TEXT, 10), Column("说明", TEXT, 50),
    ])
    ids = [inc.id for inc in incidents]
    if ids:
        first_urls = {inc.id: inc.first_post_url for inc in incidents}
        events = session.scalars(
            select(Event).where(Event.incident_id.in_(ids), Event.kind != "post_added").order_by(Event.incident_id, Event.at, Event.id)
        ).all()
        order = {i: n for n, i in enumerate(ids)}
        for ev in sorted(events, key=lambda e: (order[e.incident_id], e.at, e.id)):
            data = ev.data or {}
            if ev.kind == "opened":
                detail = first_urls.get(ev.incident_id) or ""
            elif ev.kind == "clock_met":
                detail = f"{data.get('clock', '')}{'（按时）' if data.get('on_time') else '（超时）'} {data.get('evidence') or ''}".strip()
            elif ev.kind == "regraded":
                detail = f"{data.get('before', '')} → {data.get('after', '')}"
            elif ev.kind == "closed" and data.get("open_clocks"):
                detail = "关闭时未完成：" + "、".join(data["open_clocks"])
            else:
                detail = ""
            timeline.rows.append([ev.incident_id, ev.at, EVENT_NAMES.get(ev.kind, ev.kind), ev.actor, detail])
    return top, timeline
