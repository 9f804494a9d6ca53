"""Reports that hold up: a period made again later gives the same figures, merged incidents
count once, the headline equals its tables, any period (月报, 季报, 年报) with 环比 and 同比,
scheduled like the weekly one, and the 考核 indicators with the 问责 record."""

import re

import pytest
from sqlalchemy import select

from monitor.cli import main
from monitor.clock import FakeClock, parse_iso
from monitor.config import load
from monitor.reports.period import date_range, iso_week, last_complete, month, parse, quarter, year
from monitor.reports.schedule import Reporter
from monitor.store import db
from monitor.store.models import ReportRun, User

from .conftest import write_config, write_jsonl

# W47 = 2026-11-16 (Mon) .. 2026-11-22 (Sun); W48 = 11-23 .. 11-29, Beijing time.
POSTS = [
    {"source": "weibo", "id": "e1", "title": "化工厂爆炸", "published_at": "2026-11-16T09:00:00+08:00"},  # 1
    {"source": "12345", "id": "b1", "title": "河道黑臭", "published_at": "2026-11-17T10:00:00+08:00"},  # 2
    {"source": "weibo", "id": "e2", "title": "仓库又发生爆炸", "published_at": "2026-11-18T12:00:00+08:00"},  # 3
    {"source": "12345", "id": "b2", "title": "又见黑臭水体", "published_at": "2026-11-19T12:00:00+08:00"},  # 4
    {"source": "12345", "id": "b3", "title": "小区旁黑臭", "published_at": "2026-11-21T10:00:00+08:00"},  # 5
]
IN_W47 = [
    {"at": "2026-11-16T09:30:00+08:00", "post": "e1", "action": "ack", "actor": "值班员甲"},
    {"at": "2026-11-16T12:00:00+08:00", "post": "e1", "action": "met", "clock": "发布权威信息", "actor": "值班员甲",
     "evidence": "https://gov.example/notice-1"},
    # b2's incident is b1's event: one incident in W47's figures
    {"at": "2026-11-20T09:00:00+08:00", "post": "b1", "action": "merge", "other": "b2", "actor": "科长乙"},
]
IN_W48 = [
    {"at": "2026-11-24T10:00:00+08:00", "post": "b3", "action": "regrade", "level": "重大", "actor": "科长乙"},
    {"at": "2026-11-24T11:00:00+08:00", "post": "e1", "action": "merge", "other": "e2", "actor": "科长乙"},
    {"at": "2026-11-24T12:00:00+08:00", "post": "e1", "action": "met", "clock": "召开新闻发布会", "actor": "值班员甲"},
]
LATER = parse_iso("2026-11-30T09:00:00+08:00")
TABLES_THAT_HOLD = ("summary", "kpi", "clocks", "answer_time", "severity", "rule", "department", "daily", "category", "source",
                    "overdue", "accountability", "top", "timeline")


def _replay(tmp, name: str, actions: list[dict]) -> tuple:
    cfg_path = write_config(tmp / "cfg")
    url = f"sqlite:///{tmp / (name + '.db')}"
    posts, acts = write_jsonl(tmp / "p.jsonl", POSTS), write_jsonl(tmp / f"{name}.jsonl", actions)
    assert main(["replay", "--config", str(cfg_path), "--posts", str(posts), "--actions", str(acts), "--dry-run",
                 "--until", "2026-11-30T09:00:00+08:00", "--database", url, "--out", str(tmp / f"{name}.json")]) == 0
    return cfg_path, url


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The same fortnight twice: as it stood at W47's end, and with what officers did in W48."""
    tmp = tmp_path_factory.mktemp("asof")
    cfg_path, early = _replay(tmp, "w47", IN_W47)
    _cfg, late = _replay(tmp, "w48", IN_W47 + IN_W48)
    for url in (early, late):  # the duty officer's console account names the department
        engine = db.make_engine(url)
        with db.session_factory(engine).begin() as s:
            s.add(User(name="值班员甲", role="值班员", department="应急管理局", password_hash="-", created_at=LATER))
        engine.dispose()
    return load(cfg_path), early, late


def _report(cfg, url, period, now=LATER):
    engine = db.make_engine(url)
    try:
        with db.session_factory(engine)() as session:
            from monitor.reports.collect import collect

            return collect(session, cfg.main, period, now)
    finally:
        engine.dispose()


def rows(report, key):
    return report.table(key).rows


def test_a_period_made_again_later_gives_the_same_figures(stores):
    cfg, early, late = stores
    w47 = iso_week("2026-W47")
    before, after = _report(cfg, early, w47), _report(cfg, late, w47)
    for key in TABLES_THAT_HOLD:
        assert rows(before, key) == rows(after, key), key
    assert before.headline == after.headline
    # made at the week's end, or a week later: the same
    at_end = _report(cfg, late, w47, now=w47.end)
    assert rows(at_end, "summary") == rows(after, "summary") and rows(at_end, "clocks") == rows(after, "clocks")


def test_merged_incidents_count_once_and_late_changes_count_when_they_happened(stores):
    cfg, _early, late = stores
    w47, w48 = _report(cfg, late, iso_week("2026-W47")), _report(cfg, late, iso_week("2026-W48"))
    s47, s48 = ({r[0]: r[1] for r in rows(r, "summary")} for r in (w47, w48))
    # e1, b1 (b2 merged into it in W47), e2 (merged only in W48), b3
    assert s47["新增舆情事件"] == 4 and s47["　其中重大"] == 2 and s47["　其中一般"] == 2
    assert s47["本期合并事件"] == 1 and s47["本期调整级别"] == 0
    assert 4 not in [r[0] for r in rows(w47, "top")]  # the merged-away incident is not listed
    # W47 as it stood: 发布会 of e1 not held by the week's end; b3 still 一般
    clocks = {r[0]: r[2:7] for r in rows(w47, "clocks")}
    assert clocks["召开新闻发布会"] == [2, 0, 0, 2, 0]  # e1's and e2's, both unmet then
    assert {r[0]: r[1] for r in rows(w47, "severity")}["一般"] == 2
    # W48: the late regrade, the late merge and the late answer
    assert s48["新增舆情事件"] == 0
    assert s48["本期调整级别"] == 1 and s48["本期合并事件"] == 1 and s48["往期到期、本期补办的时限"] == 1


def test_headline_figures_are_those_of_the_tables(stores):
    cfg, _early, late = stores
    for period in (iso_week("2026-W47"), iso_week("2026-W48"), month("2026-11"), date_range("2026-11-10", "2026-11-25")):
        report = _report(cfg, late, period)
        s = {r[0]: r for r in rows(report, "summary")}
        numbers = [int(n) for n in re.findall(r"(\d+) (?:起|个|条)", "".join(report.headline[:3]))]
        assert numbers[:2] == [s["新增舆情事件"][1], s["新增舆情事件"][2]]
        assert f"本期到期回应时限 {s['本期到期回应时限'][1]} 个，按时完成 {s['　按时完成'][1]} 个" in report.headline[1]
        assert f"超时未完成 {s['　超时未完成'][1]} 个" in report.headline[1]
        assert s["本期到期回应时限"][1] == sum(s[k][1] for k in ("　按时完成", "　超时完成", "　超时未完成", "　未到期"))
        assert s["本期到期回应时限"][1] == sum(r[2] for r in rows(report, "clocks"))
        assert s["新增舆情事件"][1] == sum(r[1] for r in rows(report, "rule")) == rows(report, "severity")[-1][1]


def test_indicators_and_the_accountability_record(stores):
    cfg, _early, late = stores
    report = _report(cfg, late, iso_week("2026-W47"))
    kpi = {r[0]: r[1:] for r in rows(report, "kpi")}
    clocks = {r[0]: r for r in rows(report, "clocks")}
    assert kpi["「发布权威信息」按时率"] == [1, 2, 0.5]  # e1 on time; e2 never answered
    assert kpi["回应时限按时率"][:2] == [sum(r[3] for r in clocks.values()), sum(r[3] + r[4] + r[5] for r in clocks.values())]
    assert kpi["已作权威回应的事件"][:2] == [1, 4]
    assert kpi["由责任部门作出首次权威回应"][:2] == [1, 1]  # 值班员甲 is of 应急管理局, e1's department
    answer = {r[0]: r[1:] for r in rows(report, "answer_time")}
    assert answer["重大"] == [2, 1, 3.0, 3.0]  # 09:00 → 12:00
    record = rows(report, "accountability")
    e1 = next(r for r in record if r[1] == 1 and r[3] == "召开新闻发布会")
    assert e1[0] == "应急管理局" and e1[5] == "超时未完成" and e1[6] == "值班员甲"
    assert "新事件通知→值班员" in e1[7] and "升级→科室负责人" in e1[7] and "升级→分管领导" in e1[7]
    times = re.findall(r"(\d\d-\d\d \d\d:\d\d) ", e1[7])
    assert times == sorted(times) and times[0] == "11-16 09:00"  # Beijing time, in order


def test_periods_with_previous_and_year_ago():
    assert month("2026-11").previous().label == "2026-10" and month("2026-01").previous().label == "2025-12"
    assert month("2026-11").year_ago().label == "2025-11" and month("2026-11").title == "2026年11月"
    assert quarter("2026-Q1").previous().label == "2025-Q4" and quarter("2026-Q4").title == "2026年第四季度"
    assert year("2026").previous().label == "2025" and year("2026").name == "舆情回应年报"
    assert iso_week("2026-W47").year_ago().label == "2025-W47"
    assert iso_week("2021-W01").year_ago().label == "2020-W01" and iso_week("2020-W53").year_ago().label == "2019-W52"
    assert len(quarter("2026-Q4").days) == 92 and len(year("2024").days) == 366
    assert last_complete("monthly", parse_iso("2026-12-01T00:30:00+08:00")).label == "2026-11"
    assert last_complete("quarterly", parse_iso("2026-12-03T10:00:00+08:00")).label == "2026-Q3"
    assert last_complete("annual", parse_iso("2026-12-03T10:00:00+08:00")).label == "2025"
    assert parse("monthly", "2026-11") == month("2026-11") and parse("range", "2026-11-01—2026-11-07") == date_range("2026-11-01", "2026-11-07")
    assert date_range("2026-11-01", "2026-11-07").name == "舆情回应报告"
    for bad, maker in (("2026-13", month), ("2026-Q5", quarter), ("26", year)):
        with pytest.raises(ValueError):
            maker(bad)


def test_month_quarter_and_year_reports_from_the_cli(stores, tmp_path, capsys):
    cfg, _early, late = stores
    cfg_path = str(cfg.path)
    assert main(["report", "monthly", "--month", "2026-11", "--format", "csv,html", "--out", str(tmp_path), "--config", cfg_path, "--database", late]) == 0
    out = capsys.readouterr().out
    # by the month's end e2 was merged into e1 and b3 regraded: 3 incidents, 2 of them 重大
    assert out.startswith("舆情回应月报 2026-11（2026年11月）") and "新增舆情事件 3 起（上期 0 起，去年同期 0 起）：特别重大 0 起、重大 2 起" in out
    page = (tmp_path / "舆情月报_2026-11.html").read_text(encoding="utf-8")
    assert "<h1>舆情回应月报（2026-11）</h1>" in page and "环比" in page and "同比" in page
    assert main(["report", "quarterly", "--quarter", "2026-Q4", "--format", "csv", "--out", str(tmp_path), "--config", cfg_path, "--database", late]) == 0
    assert "舆情回应季报 2026-Q4（2026年第四季度）" in capsys.readouterr().out
    trend = (tmp_path / "舆情季报_2026-Q4_每月新增事件.csv").read_text(encoding="utf-8-sig").splitlines()
    assert [line.split(",")[0] for line in trend[1:]] == ["2026-10", "2026-11", "2026-12"] and trend[2].endswith(",3")
    assert main(["report", "annual", "--year", "2026", "--format", "xlsx", "--out", str(tmp_path), "--config", cfg_path, "--database", late]) == 0
    assert (tmp_path / "舆情年报_2026.xlsx").exists() and capsys.readouterr().out.startswith("舆情回应年报 2026（2026年）")
    assert main(["report", "monthly", "--from", "2026-11-16", "--to", "2026-11-22", "--format", "csv", "--out", str(tmp_path), "--config", cfg_path, "--database", late]) == 0
    assert capsys.readouterr().out.startswith("舆情回应报告 2026-11-16—2026-11-22")
    assert main(["report", "quarterly", "--quarter", "2026-Q7", "--config", cfg_path, "--database", late]) == 2
    assert "无法识别的季度" in capsys.readouterr().err


@pytest.fixture
def reporter(tmp_path, receiver):
    """A reporter on a fresh store whose schedule is `schedule` ([report] keys), from `start`."""
    made = []

    def make(schedule: str, start: str) -> Reporter:
        from monitor.app import load_channels

        folder = tmp_path / "cfg"
        write_config(folder, receiver_url=receiver.url("/hook"), extra=f'[report]\n{schedule}\nformats = ["csv"]\n')
        cfg = load(folder / "monitor.toml")
        engine = db.make_engine(cfg.database_url())
        db.upgrade(engine)
        made.append(engine)
        return Reporter(cfg, db.session_factory(engine), load_channels(cfg), FakeClock(parse_iso(start)))

    yield make
    for engine in made:
        engine.dispose()


def test_monthly_and_weekly_runs_at_the_same_moment_are_both_sent(reporter, receiver):
    # Monday 1 March 2027: the weekly and the monthly report fall due at the same minute
    reporter = reporter('monthly_cron = "0 9 1 * *"', "2027-02-27T12:00:00+08:00")
    sessions, clock = reporter.sessions, reporter.clock
    assert reporter.run_due() == 0  # first look: past runs predate this installation
    clock.set(parse_iso("2027-03-01T09:00:00+08:00"))
    assert reporter.run_due() == 2
    clock.set(parse_iso("2027-03-01T10:00:00+08:00"))
    assert reporter.run_due() == 0
    titles = sorted(t for t in receiver.titles() if t.startswith("舆情回应"))
    assert titles == ["舆情回应周报（2027-W08，2027年02月22日—02月28日）", "舆情回应月报（2027-02，2027年2月）"]
    with sessions() as s:
        runs = sorted((r.kind, r.period, r.state) for r in s.scalars(select(ReportRun)))
    assert ("monthly", "2027-02", "sent") in runs and ("weekly", "2027-W08", "sent") in runs
    assert ("monthly", "2027-01", "skipped") in runs


def test_first_look_finds_the_last_annual_run_so_the_next_one_is_made(reporter, receiver):
    reporter = reporter('annual_cron = "0 9 2 1 *"\ncron = "0 9 1 1 *"', "2026-12-03T12:00:00+08:00")
    reporter.run_due()  # eleven months after the last annual run: it is found and marked skipped
    reporter.clock.set(parse_iso("2027-01-02T09:00:00+08:00"))
    assert reporter.run_due() >= 1
    assert "舆情回应年报（2026，2026年）" in receiver.titles()


def test_config_rejects_a_bad_schedule(tmp_path):
    from monitor.config import ConfigError

    path = write_config(tmp_path / "cfg", extra='[report]\nquarterly_cron = "every quarter"\n')
    with pytest.raises(ConfigError, match="quarterly_cron"):
        load(path)
