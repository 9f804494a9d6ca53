"""Reading one period's facts from the store into a Report.

Set-based queries only: a year can hold millions of posts, and nothing here loads them.
Incidents and clocks are read as they stood at the period's end (ledger.py): a report made
again later gives the same figures, and what happened afterwards (a late answer, a regrade,
a merge) counts in the period it happened in. Every figure of the headline is read from a
table of the same report.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from monitor.clock import SHANGHAI, show
from monitor.config import MainConfig
from monitor.incidents.record import official_source
from monitor.incidents.words import EVENT_NAMES as TIMELINE_NAMES
from monitor.incidents.workdays import WorkCalendar
from monitor.reports import ledger
from monitor.reports.ledger import LATE, ON_TIME, OVERDUE, PENDING, UNASSIGNED, ClockFact, IncidentFact, chunks, settled
from monitor.reports.model import CHANGE, DATE, HOURS, INT, MINUTES, PCT, TEXT, TIME, Column, Report, Table
from monitor.reports.period import Period
from monitor.reports.stats import change, percentile, rate
from monitor.severity import SEVERITIES
from monitor.store.models import Event, Incident, IncidentPost, Match, Notification, Outbox, Post, Source, User

EVENT_NAMES = {
    "opened": "发现（首条帖文）",
    "acknowledged": "确认收到",
    "clock_met": "登记回应",
    "closed": "关闭",
    "regraded": "调整级别",
    "start_moved": "起算时间提前",
    "false_positive": "标记为误报",
    "merged": "其他事件并入",
    "merged_into": "并入其他事件",
    "evidence_proposed": "官方渠道发布（待确认）",
}
RATE_NOTE = "按时率 = 按时完成 ÷ 已到期（按时完成 + 超时完成 + 超时未完成）。"


@dataclass
class Figures:
    """One period's countable facts, as they stood at its end (or now, for a period still running)."""

    period: Period
    as_of: datetime
    incidents: list[IncidentFact]  # opened in the period and counted (not merged away, not 误报)
    by_severity: Counter
    posts: int
    matched: int
    closed: int
    false_positives: int
    merges: int
    regrades: int
    clocks: list[ClockFact]  # due in the period
    outcomes: Counter
    made_up: list[ClockFact]  # due before the period, answered late in it

    @property
    def total(self) -> int:
        return len(self.incidents)

    @property
    def due(self) -> int:
        return settled(self.outcomes)


def figures(session: Session, period: Period, now: datetime) -> Figures:
    as_of = min(period.end, now)
    opened = ledger.incidents(session, and_(Incident.opened_at >= period.start, Incident.opened_at < period.end), as_of)
    counted = sorted((f for f in opened.values() if f.counted), key=lambda f: f.id)
    in_period = (Post.fetched_at >= period.start, Post.fetched_at < as_of)
    posts = session.scalar(select(func.count(Post.id)).where(*in_period)) or 0
    matched = session.scalar(
        select(func.count(func.distinct(Match.post_id))).join(Post, Post.id == Match.post_id).where(*in_period)
    ) or 0
    happened = dict(session.execute(
        select(Event.kind, func.count(Event.id))
        .where(Event.at >= period.start, Event.at < as_of, Event.kind.in_(("regraded", "merged_into", "false_positive")))
        .group_by(Event.kind)
    ).all())
    closed = session.scalar(
        select(func.count(Incident.id)).where(Incident.closed_at >= period.start, Incident.closed_at < as_of,
                                              Incident.merged_into.is_(None))
    ) or 0
    clocks = ledger.clocks_due(session, period.start, period.end, as_of)
    return Figures(
        period, as_of, counted, Counter(f.severity for f in counted), posts, matched, closed,
        happened.get("false_positive", 0), happened.get("merged_into", 0), happened.get("regraded", 0),
        clocks, Counter(c.outcome(as_of) for c in clocks),
        ledger.clocks_met_late(session, period.start, period.end, as_of),
    )


def _hours(delta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def _on_time_row(label, new: int, facts: list[ClockFact], as_of: datetime) -> list:
    c = Counter(f.outcome(as_of) for f in facts)
    return [label, new, len(facts), c[ON_TIME], c[LATE], c[OVERDUE], rate(c[ON_TIME], settled(c))]


def _on_time_columns(first: str) -> list[Column]:
    return [Column(first, TEXT, 20), Column("新增事件", INT), Column("本期到期时限", INT), Column(ON_TIME, INT), Column(LATE, INT),
            Column(OVERDUE, INT), Column("按时率", PCT)]


def collect(session: Session, cfg: MainConfig, period: Period, now: datetime) -> Report:
    previous, year_ago = period.previous(), period.year_ago()
    this, before, last_year = (figures(session, p, now) for p in (period, previous, year_ago))
    as_of = this.as_of

    def compare(label: str, value) -> list:
        now_, prev_, ago_ = value(this), value(before), value(last_year)
        return [label, now_, prev_, change(now_, prev_), ago_, change(now_, ago_)]

    summary = Table("summary", "概况", [Column("指标", TEXT, 22), Column("本期", INT, 10), Column("上期", INT, 10), Column("环比", CHANGE, 10),
                                        Column("去年同期", INT, 10), Column("同比", CHANGE, 10)],
                    note=f"上期：{previous.title}；去年同期：{year_ago.title}。合并的事件只计一次；标记为误报的不计入事件与时限。")
    summary.rows = [
        compare("新增舆情事件", lambda f: f.total),
        *[compare(f"　其中{s}", lambda f, s=s: f.by_severity.get(s, 0)) for s in SEVERITIES],
        compare("采集帖文", lambda f: f.posts),
        compare("命中关键词的帖文", lambda f: f.matched),
        compare("本期关闭事件", lambda f: f.closed),
        compare("本期标记为误报", lambda f: f.false_positives),
        compare("本期合并事件", lambda f: f.merges),
        compare("本期调整级别", lambda f: f.regrades),
        compare("本期到期回应时限", lambda f: len(f.clocks)),
        compare(f"　{ON_TIME}", lambda f: f.outcomes[ON_TIME]),
        compare(f"　{LATE}", lambda f: f.outcomes[LATE]),
        compare(f"　{OVERDUE}", lambda f: f.outcomes[OVERDUE]),
        compare(f"　{PENDING}", lambda f: f.outcomes[PENDING]),
        compare("往期到期、本期补办的时限", lambda f: len(f.made_up)),
    ]

    clocks = Table("clocks", "回应时限完成情况", [
        Column("时限", TEXT, 14), Column("时长（小时）", HOURS), Column("本期到期", INT), Column(ON_TIME, INT), Column(LATE, INT),
        Column(OVERDUE, INT), Column(PENDING, INT), Column("按时率", PCT), Column("完成用时中位数（小时）", HOURS, 14), Column("完成用时P90（小时）", HOURS, 14),
    ], note=RATE_NOTE + "完成用时自首条帖文起算。")
    facts = this.clocks
    names = [c.name for c in cfg.clock] + sorted({f.name for f in facts} - {c.name for c in cfg.clock})
    within = {c.name: _hours(c.within) for c in cfg.clock if c.within is not None}
    for name in names:
        mine = [f for f in facts if f.name == name]
        count = Counter(f.outcome(as_of) for f in mine)
        durations = [_hours(f.met_at - f.started_at) for f in mine if f.met_at is not None]
        due = settled(count)
        clocks.rows.append([name, within.get(name), len(mine), count[ON_TIME], count[LATE], count[OVERDUE], count[PENDING],
                            rate(count[ON_TIME], due), percentile(durations, 50), percentile(durations, 90)])

    severity = _severity_table(this)
    department = Table("department", "按责任部门", _on_time_columns("责任部门"), note=RATE_NOTE)
    by_rule = Table("rule", "按规则", _on_time_columns("规则"), note=RATE_NOTE)
    for table, key in ((department, lambda x: x.department or UNASSIGNED), (by_rule, lambda x: x.rule)):
        new = Counter(key(i) for i in this.incidents)
        grouped: dict[str, list[ClockFact]] = defaultdict(list)
        for f in facts:
            grouped[key(f)].append(f)
        for label in sorted(set(new) | set(grouped), key=lambda d: (-new.get(d, 0), d)):
            table.rows.append(_on_time_row(label, new.get(label, 0), grouped[label], as_of))

    kpi, answer_time = _indicators(session, cfg, this)
    board, board_category, latency = _board(session, cfg, period, as_of)
    accountability = _accountability(session, cfg, this)

    top, timeline = _top_incidents(session, this)
    daily = _trend(this)
    category = Table("category", "按分类", [Column("分类", TEXT, 16), Column("事件数", INT)])
    category.rows = [[c or "（未分类）", n] for c, n in sorted(Counter(i.category for i in this.incidents).items(), key=lambda x: (-x[1], x[0]))]

    source, health, sources = _sources(session, this)
    overdue = Table("overdue", "超时的回应时限", [
        Column("事件", INT, 8), Column("级别", TEXT, 8), Column("标题", TEXT, 40), Column("责任部门", TEXT, 16), Column("时限", TEXT, 14),
        Column("截止时间", TIME, 18), Column("状态", TEXT, 12), Column("超时（小时，未完成的截至期末）", HOURS, 14), Column("登记人", TEXT, 10),
    ])
    for f in facts:
        outcome = f.outcome(as_of)
        if outcome in (LATE, OVERDUE):
            overdue.rows.append([f.incident_id, f.severity, f.incident.title, f.department, f.name, f.due_at, outcome,
                                 _hours((f.met_at or as_of) - f.due_at), f.met_by or ""])

    # The headline reads its figures from the tables above, so it can never disagree with them.
    s = {r[0]: r for r in summary.rows}
    k = {r[0]: r for r in kpi.rows}
    on_time_rate = k["回应时限按时率"][3]
    headline = [
        f"本期（{period.title}）新增舆情事件 {s['新增舆情事件'][1]} 起（上期 {s['新增舆情事件'][2]} 起，去年同期 {s['新增舆情事件'][4]} 起）："
        + "、".join(f"{sev} {s[f'　其中{sev}'][1]} 起" for sev in SEVERITIES) + "。",
        f"本期到期回应时限 {s['本期到期回应时限'][1]} 个，按时完成 {s[f'　{ON_TIME}'][1]} 个"
        + (f"，按时率 {on_time_rate:.1%}" if on_time_rate is not None else "")
        + f"；超时完成 {s[f'　{LATE}'][1]} 个，超时未完成 {s[f'　{OVERDUE}'][1]} 个"
        + (f"，未到期 {s[f'　{PENDING}'][1]} 个" if s[f'　{PENDING}'][1] else "") + "。",
        f"采集帖文 {s['采集帖文'][1]} 条，其中命中关键词 {s['命中关键词的帖文'][1]} 条；来源 {len(sources)} 个，"
        f"当前异常 {sum(1 for x in sources if x.consecutive_failures)} 个。",
    ]
    if board.rows and board.rows[0][1]:
        row = board.rows[0]
        headline.append(f"留言 {row[1]} 条，已答复 {row[2]} 条，48 小时内答复 {row[5]} 条（{_pct(row[6])}）。")
    if as_of < period.end:
        headline.append(f"本期尚未结束，数字截至 {show(as_of)}。")
    tables = [summary, kpi, clocks, answer_time, severity, by_rule, department, daily, category, board, latency, board_category,
              source, overdue, accountability, top, timeline, health]
    return Report(period, previous, now, headline, tables)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _severity_table(this: Figures) -> Table:
    severity = Table("severity", "按级别", [Column("级别", TEXT, 10), Column("事件数", INT), Column("已确认", INT), Column("未确认", INT),
                                          Column("确认用时中位数（分钟）", MINUTES, 14), Column("确认用时P90（分钟）", MINUTES, 14),
                                          Column("本期到期时限", INT), Column(ON_TIME, INT), Column("按时率", PCT)], note=RATE_NOTE)
    minutes: dict[str, list[float]] = defaultdict(list)
    unacked: Counter = Counter()
    for inc in this.incidents:
        if inc.acked_at is None:
            unacked[inc.severity] += 1
        else:
            minutes[inc.severity].append(round((inc.acked_at - inc.opened_at).total_seconds() / 60, 1))
    clocks: dict[str, list[ClockFact]] = defaultdict(list)
    for f in this.clocks:
        clocks[f.severity].append(f)

    def row(label, count, acked, not_acked, mins, facts):
        c = Counter(f.outcome(this.as_of) for f in facts)
        return [label, count, acked, not_acked, percentile(mins, 50), percentile(mins, 90), len(facts), c[ON_TIME],
                rate(c[ON_TIME], settled(c))]

    severity.rows = [row(s, this.by_severity.get(s, 0), len(minutes[s]), unacked[s], minutes[s], clocks[s]) for s in SEVERITIES]
    every = [m for ms in minutes.values() for m in ms]
    severity.rows.append(row("合计", this.total, len(every), sum(unacked.values()), every, this.clocks))
    return severity


def _trend(this: Figures) -> Table:
    """New incidents per day; per month for a quarter or a year."""
    by_month = len(this.period.days) > 62
    per: dict = defaultdict(Counter)
    for inc in this.incidents:
        day = inc.opened_at.astimezone(SHANGHAI).date()
        per[f"{day:%Y-%m}" if by_month else day][inc.severity] += 1
    keys = list(dict.fromkeys(f"{d:%Y-%m}" for d in this.period.days)) if by_month else this.period.days
    table = Table("daily", "每月新增事件" if by_month else "每日新增事件",
                  [Column("月份" if by_month else "日期", TEXT if by_month else DATE, 12), *[Column(s, INT, 8) for s in SEVERITIES], Column("合计", INT, 8)])
    for key in keys:
        counts = [per[key][s] for s in SEVERITIES]
        table.rows.append([key, *counts, sum(counts)])
    return table


def _answer_clocks(cfg: MainConfig) -> list[str]:
    names = [c.name for c in cfg.clock]
    wanted = [n for n in cfg.report.answer_clocks if n in names]
    return wanted or names


def _indicators(session: Session, cfg: MainConfig, this: Figures) -> tuple[Table, Table]:
    """考核 indicators: on-time rates, time to the first authoritative answer, and how often
    the responsible department gave it (分级负责、属地管理)."""
    as_of = this.as_of
    kpi = Table("kpi", "考核指标", [Column("指标", TEXT, 34), Column("达标", INT), Column("应计", INT), Column("比率", PCT)],
                note=RATE_NOTE + "首次权威回应：" + "、".join(_answer_clocks(cfg)) + " 中最早登记完成的一个；"
                "由责任部门回应：登记人（控制台账号）或证据来源（官方渠道）的部门与事件的责任部门相同。")
    outcomes = this.outcomes
    kpi.rows.append(["回应时限按时率", outcomes[ON_TIME], this.due, rate(outcomes[ON_TIME], this.due)])
    by_name: dict[str, Counter] = defaultdict(Counter)
    for f in this.clocks:
        by_name[f.name][f.outcome(as_of)] += 1
    for name, c in by_name.items():
        due = settled(c)
        kpi.rows.append([f"「{name}」按时率", c[ON_TIME], due, rate(c[ON_TIME], due)])

    # First authoritative answer of the incidents opened in the period, as of its end.
    answer = set(_answer_clocks(cfg))
    ids = [i.id for i in this.incidents]
    first: dict[int, ClockFact] = {}
    for part in chunks(ids):
        for f in ledger.clocks_of(session, part, as_of):
            if f.name in answer and f.met_at is not None and (f.incident_id not in first or f.met_at < first[f.incident_id].met_at):
                first[f.incident_id] = f
    departments = _actor_departments(session, cfg, [f.met_by for f in first.values()])
    own = sum(1 for f in first.values() if f.incident.department and departments.get(f.met_by or "") == f.incident.department)
    with_department = sum(1 for f in first.values() if f.incident.department)
    kpi.rows.append(["已作权威回应的事件", len(first), this.total, rate(len(first), this.total)])
    kpi.rows.append(["由责任部门作出首次权威回应", own, with_department, rate(own, with_department)])
    overdue_incidents = {f.incident_id for f in this.clocks if f.outcome(as_of) == OVERDUE}
    kpi.rows.append(["有超时未完成时限的事件", len(overdue_incidents), this.total, rate(len(overdue_incidents), this.total)])

    answer_time = Table("answer_time", "首次权威回应用时", [
        Column("级别", TEXT, 10), Column("事件数", INT), Column("已回应", INT), Column("用时中位数（小时）", HOURS, 14), Column("用时P90（小时）", HOURS, 14),
    ], note="自首条帖文起算，至" + "、".join(_answer_clocks(cfg)) + "中最早登记完成的一个。")
    hours: dict[str, list[float]] = defaultdict(list)
    for f in first.values():
        hours[f.incident.severity].append(_hours(f.met_at - f.incident.started_at))
    for s in SEVERITIES:
        answer_time.rows.append([s, this.by_severity.get(s, 0), len(hours[s]), percentile(hours[s], 50), percentile(hours[s], 90)])
    every = [h for hs in hours.values() for h in hs]
    answer_time.rows.append(["合计", this.total, len(every), percentile(every, 50), percentile(every, 90)])
    return kpi, answer_time


def _actor_departments(session: Session, cfg: MainConfig, actors: list[str | None]) -> dict[str, str]:
    """Who answered, as a department: console accounts by their department, official channels
    (actor "system:官方渠道:<source>") and boards by their source's configured department."""
    names = sorted({a for a in actors if a})
    found = dict(session.execute(select(User.name, User.department).where(User.name.in_(names))).all()) if names else {}
    by_source = {s.name: s.department for s in cfg.source if s.department}
    for actor in names:
        if official_source(actor) in by_source:
            found[actor] = by_source[official_source(actor)]
    return {k: v for k, v in found.items() if v}


def _board(session: Session, cfg: MainConfig, period: Period, as_of: datetime) -> tuple[Table, Table, Table]:
    """Board messages (sources that show an official reply) published in the period: how many
    were answered, how fast, and within how many working days (local norms differ)."""
    days = sorted(set(cfg.report.board_working_days))
    calendar = WorkCalendar(cfg.calendar.holidays, cfg.calendar.workdays)
    published = func.coalesce(Post.published_at, Post.fetched_at)
    rows = session.execute(
        select(Post.id, published, Post.fetched_at, Post.replied, Post.reply_at)
        # published ≤ fetched: the fetch time bounds the search (ix_posts_board)
        .where(Post.replied.is_not(None), Post.fetched_at >= period.start, Post.fetched_at < as_of,
               published >= period.start, published < period.end)
    ).all()
    categories = _categories(session, [r[0] for r in rows])
    columns = [Column("分类", TEXT, 16), Column("留言", INT), Column("已答复", INT), Column("答复用时中位数（小时）", HOURS, 14),
               Column("答复用时P90（小时）", HOURS, 14), Column("48小时内答复", INT), Column("48小时内答复率", PCT),
               *[c for n in days for c in (Column(f"{n}个工作日内答复", INT), Column(f"{n}个工作日内答复率", PCT))]]
    board = Table("board", "留言办理", columns, note="留言：显示官方答复状态的来源（领导留言板、12345 等）在本期发布的帖文；"
                  "答复时间以留言板显示为准；N 个工作日内：发布当日不计，至第 N 个工作日 24 时（法定节假日与调休见 [calendar]）。")
    board_category = Table("board_category", "留言办理（按分类）", columns, note="分类取帖文命中的规则的分类。")
    latency = Table("board_latency", "留言答复用时分布", [Column("答复用时", TEXT, 16), Column("留言", INT), Column("占比", PCT)])
    if not rows:
        return board, board_category, latency

    stats = []
    for post_id, when, fetched, replied, reply_at in rows:
        answered = bool(replied) and reply_at is not None and reply_at < as_of
        hours = max(0.0, _hours(reply_at - when)) if answered else None
        within = [answered and reply_at <= calendar.add_working_days(when, n) for n in days]
        stats.append((categories.get(post_id, "（未命中规则）"), answered, hours, within))

    def row(label, items):
        hours = [h for _c, a, h, _w in items if a]
        in_48 = sum(1 for h in hours if h <= 48)
        out = [label, len(items), len(hours), percentile(hours, 50), percentile(hours, 90), in_48, rate(in_48, len(items))]
        for i in range(len(days)):
            n = sum(1 for *_x, w in items if w[i])
            out += [n, rate(n, len(items))]
        return out

    board.rows.append(row("全部留言", stats))
    grouped: dict[str, list] = defaultdict(list)
    for item in stats:
        grouped[item[0]].append(item)
    for label in sorted(grouped, key=lambda c: (-len(grouped[c]), c)):
        board_category.rows.append(row(label, grouped[label]))
    buckets = [("1 天内", 24), ("1–2 天", 48), ("2–5 天", 120), ("5–15 天", 360), ("15–30 天", 720), ("30 天以上", None)]
    counts = Counter()
    for _c, answered, hours, _w in stats:
        if not answered:
            counts["未答复"] += 1
            continue
        counts[next(label for label, limit in buckets if limit is None or hours <= limit)] += 1
    for label in [b[0] for b in buckets] + ["未答复"]:
        latency.rows.append([label, counts[label], rate(counts[label], len(stats))])
    return board, board_category, latency


def _categories(session: Session, post_ids: list[int]) -> dict[int, str]:
    """Each post's category: that of the first rule it matched."""
    out: dict[int, str] = {}
    for part in chunks(post_ids):
        for post_id, category, rule in session.execute(
            select(Match.post_id, Match.category, Match.rule).where(Match.post_id.in_(part)).order_by(Match.id)
        ).all():
            out.setdefault(post_id, category or rule)
    return out


def _accountability(session: Session, cfg: MainConfig, this: Figures) -> Table:
    """问责 record: every clock answered late or not at all, with who was told and when."""
    table = Table("accountability", "超时问责记录", [
        Column("责任部门", TEXT, 16), Column("事件", INT, 8), Column("级别", TEXT, 8), Column("时限", TEXT, 14), Column("截止时间", TIME, 18),
        Column("状态", TEXT, 12), Column("确认人", TEXT, 10), Column("提醒与升级记录", TEXT, 60),
    ], note="提醒与升级记录：截至本期结束已发出的提醒和升级，依次为时间、层级、接收标签与送达情况（北京时间）。")
    late = [f for f in this.clocks if f.outcome(this.as_of) in (LATE, OVERDUE)]
    if not late:
        return table
    tiers = [t.name for t in cfg.tier]
    ids = sorted({f.incident_id for f in late})
    sent: dict[tuple[int, str | None], list[str]] = defaultdict(list)
    delivered: dict[int, list[str]] = defaultdict(list)
    notes = []
    for part in chunks(ids):
        notes += session.execute(
            select(Notification.id, Notification.incident_id, Notification.clock, Notification.kind, Notification.tier,
                   Notification.tags, Notification.fired_at)
            .where(Notification.incident_id.in_(part), Notification.kind.in_(("opened", "reminder", "escalation")),
                   Notification.fired_at < this.as_of, Notification.disposition != "superseded")
            .order_by(Notification.fired_at, Notification.id)
        ).all()
    note_ids = [n[0] for n in notes]
    for part in chunks(note_ids):
        for notification_id, tag, state, sent_at in session.execute(
            select(Outbox.notification_id, Outbox.tag, Outbox.state, Outbox.sent_at)
            .where(Outbox.notification_id.in_(part)).order_by(Outbox.id)
        ).all():
            ok = state == "sent" and sent_at is not None and sent_at < this.as_of
            delivered[notification_id].append(f"{tag}：{'已送达 ' + show(sent_at)[11:16] if ok else '未送达'}")
    kinds = {"opened": "新事件通知", "reminder": "提醒", "escalation": "升级"}
    for nid, incident_id, clock, kind, tier, tags, fired_at in notes:
        who = tiers[tier] if 0 <= tier < len(tiers) else f"第{tier + 1}级"
        line = f"{show(fired_at)[5:16]} {kinds[kind]}→{who}（{'、'.join(delivered[nid]) or '、'.join(tags) or '无接收地址'}）"
        sent[(incident_id, clock if kind != "opened" else None)].append(line)
    for f in sorted(late, key=lambda f: (f.department, f.incident_id, f.due_at)):
        record = sent[(f.incident_id, None)] + sent[(f.incident_id, f.name)]
        table.rows.append([f.department, f.incident_id, f.severity, f.name, f.due_at, f.outcome(this.as_of),
                           f.incident.acked_by or "（未确认）", "；".join(record) or "（无提醒记录）"])
    return table


def _sources(session: Session, this: Figures) -> tuple[Table, Table, list[Source]]:
    period, as_of = this.period, this.as_of
    ids = [i.id for i in this.incidents]
    source = Table("source", "按来源", [Column("来源", TEXT, 24), Column("涉及事件", INT), Column("本期帖文", INT)])
    incidents_by_source: Counter = Counter()
    for part in chunks(ids):
        incidents_by_source.update(dict(session.execute(
            select(Post.source_id, func.count(func.distinct(IncidentPost.incident_id)))
            .join(IncidentPost, IncidentPost.post_id == Post.id)
            .where(IncidentPost.incident_id.in_(part), IncidentPost.added_at < as_of)
            .group_by(Post.source_id)
        ).all()))
    posts_by_source = dict(session.execute(
        select(Post.source_id, func.count(Post.id))
        .where(Post.fetched_at >= period.start, Post.fetched_at < as_of)
        .group_by(Post.source_id)
    ).all())
    sources = session.scalars(select(Source).order_by(Source.name)).all()
    for s in sorted(sources, key=lambda s: (-incidents_by_source.get(s.id, 0), -posts_by_source.get(s.id, 0), s.name)):
        if incidents_by_source.get(s.id) or posts_by_source.get(s.id):
            source.rows.append([s.name, incidents_by_source.get(s.id, 0), posts_by_source.get(s.id, 0)])
    health = Table("source_health", "来源运行状况（生成报告时）", [
        Column("来源", TEXT, 24), Column("状态", TEXT, 14), Column("本期帖文", INT), Column("连续失败", INT),
        Column("最近成功", TIME, 18), Column("最近错误", TEXT, 40),
    ])
    for s in sources:
        state = "正常" if not s.consecutive_failures else f"失败（连续 {s.consecutive_failures} 次）"
        health.rows.append([s.name, state, posts_by_source.get(s.id, 0), s.consecutive_failures, s.last_success_at, s.last_error or ""])
    return source, health, sources


def _top_incidents(session: Session, this: Figures) -> tuple[Table, Table]:
    top = Table("top", "重点事件（按帖文数）", [
        Column("事件", INT, 8), Column("级别", TEXT, 8), Column("规则", TEXT, 14), Column("标题", TEXT, 40), Column("命中词", TEXT, 18),
        Column("帖文数", INT), Column("发现时间", TIME, 18), Column("状态", TEXT, 10), Column("责任部门", TEXT, 16),
    ])
    timeline = Table("timeline", "重点事件时间线", [
        Column("事件", INT, 8), Column("时间", TIME, 18), Column("事项", TEXT, 16), Column("操作人", TEXT, 10), Column("说明", TEXT, 50),
    ])
    facts = {i.id: i for i in this.incidents}
    if not facts:
        return top, timeline
    ids = list(facts)
    counts: Counter = Counter()
    for part in chunks(ids):
        counts.update(dict(session.execute(
            select(IncidentPost.incident_id, func.count(IncidentPost.post_id))
            .where(IncidentPost.incident_id.in_(part), IncidentPost.added_at < this.as_of)
            .group_by(IncidentPost.incident_id)
        ).all()))
    chosen = sorted(ids, key=lambda i: (-counts[i], i))[:10]
    terms = dict(session.execute(select(Incident.id, Incident.terms).where(Incident.id.in_(chosen))).all())
    for incident_id in chosen:
        inc = facts[incident_id]
        state = "已关闭" if inc.closed_at else ("已确认" if inc.acked_at else "待处置")
        top.rows.append([inc.id, inc.severity, inc.rule, inc.title, "、".join(terms.get(inc.id) or ()), counts[incident_id],
                         inc.opened_at, state, inc.department])
    events = session.scalars(
        select(Event).where(Event.incident_id.in_(chosen), Event.kind != "post_added", Event.at < this.as_of)
        .order_by(Event.incident_id, Event.at, Event.id)
    ).all()
    order = {i: n for n, i in enumerate(chosen)}
    for ev in sorted(events, key=lambda e: (order[e.incident_id], e.at, e.id)):
        data = ev.data or {}
        if ev.kind == "opened":
            detail = facts[ev.incident_id].first_post_url or ""
        elif ev.kind == "clock_met":
            detail = f"{data.get('clock', '')}{'（按时）' if data.get('on_time') else '（超时）'} {data.get('evidence') or ''}".strip()
        elif ev.kind == "regraded":
            detail = f"{data.get('before', '')} → {data.get('after', '')}"
        elif ev.kind == "closed" and data.get("open_clocks"):
            detail = "关闭时未完成：" + "、".join(data["open_clocks"])
        elif ev.kind == "merged":
            detail = f"#{data.get('other')} 并入"
        elif ev.kind == "merged_into":
            detail = f"并入 #{data.get('into')}"
        elif ev.kind == "evidence_proposed":
            detail = f"{data.get('clock', '')} {data.get('url') or ''}".strip()
        else:
            detail = ""
        timeline.rows.append([ev.incident_id, ev.at, EVENT_NAMES.get(ev.kind) or TIMELINE_NAMES.get(ev.kind, ev.kind), ev.actor, detail])
    return top, timeline

