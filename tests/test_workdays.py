"""Working-day clocks on the Chinese holiday calendar, with an injected start."""

import json
from datetime import date

from monitor.cli import main
from monitor.clock import parse_iso
from monitor.config import ClockRule
from monitor.incidents.clocks import plan_clocks
from monitor.incidents.workdays import WorkCalendar

from .conftest import write_config, write_jsonl


def test_across_national_day_2026():
    # 2026: 10-01..10-07 off, 10-10 (Saturday) a make-up workday.
    due = WorkCalendar().add_working_days(parse_iso("2026-09-30T10:00:00+08:00"), 3)
    assert due == parse_iso("2026-10-11T00:00:00+08:00")  # the end of 10-10, the third working day


def test_a_year_the_package_does_not_know_uses_the_config_lists():
    calendar = WorkCalendar(holidays=[date(2027, 1, 1)], workdays=[date(2027, 1, 2)])
    # 2027-01-01 off (config), 01-02 Saturday worked (config), 01-03 Sunday off, 01-04 Monday
    assert calendar.add_working_days(parse_iso("2026-12-31T10:00:00+08:00"), 2) == parse_iso("2027-01-05T00:00:00+08:00")
    # without the lists, 2027 falls back to Monday–Friday: 01-01 (Friday) counts
    assert WorkCalendar().add_working_days(parse_iso("2026-12-31T10:00:00+08:00"), 2) == parse_iso("2027-01-05T00:00:00+08:00")
    assert WorkCalendar().add_working_days(parse_iso("2026-12-31T10:00:00+08:00"), 1) == parse_iso("2027-01-02T00:00:00+08:00")


def test_clock_rules_by_category_and_working_days():
    rules = [
        ClockRule(name="权威回应", severities=["一般"], within="48h"),
        ClockRule(name="依申请公开答复", severities=["一般", "较大"], working_days=20, categories=["依申请公开"]),
    ]
    start = parse_iso("2026-09-21T09:00:00+08:00")
    plans = plan_clocks("一般", rules, start, "信息公开申请", "依申请公开", WorkCalendar())
    assert [p.name for p in plans] == ["权威回应", "依申请公开答复"]
    # 09-22 23 24 (25 中秋, 26 27 weekend) 28 29 30 (10-01..07 国庆) 10-08 09 10 12 13 14 15 16 19 20 21 22 23 26
    assert plans[1].due_at == parse_iso("2026-10-27T00:00:00+08:00")
    assert [p.name for p in plan_clocks("一般", rules, start, "黑臭水体", "环境保护")] == ["权威回应"]


def test_replay_with_a_working_day_rule(tmp_path):
    words = ('[[rule]]\nname = "信息公开申请"\nterms = ["信息公开申请"]\nseverity = "一般"\ncategory = "依申请公开"\n'
             'department = "办公室"\n')
    extra = ('[[clock]]\nname = "依申请公开答复"\nseverities = ["一般"]\ncategories = ["依申请公开"]\nworking_days = 20\n'
             '[[clock]]\nname = "权威回应"\nseverities = ["较大", "一般"]\nwithin = "48h"\n'
             '[[clock]]\nname = "发布权威信息"\nseverities = ["特别重大", "重大"]\nwithin = "5h"\n')
    cfg = write_config(tmp_path / "cfg", watchwords=words, extra=extra)
    posts = write_jsonl(tmp_path / "p.jsonl", [{"source": "信箱", "id": "m1", "title": "关于河道整治资金的信息公开申请",
                                                "body": "", "published_at": "2026-09-30T10:00:00+08:00"}])
    out = tmp_path / "r.json"
    assert main(["replay", "--config", str(cfg), "--posts", str(posts), "--dry-run", "--out", str(out), "--until", "2026-10-02T00:00:00+08:00"]) == 0
    clocks = {c["name"]: c["due_at"] for c in json.loads(out.read_text())["incidents"][0]["clocks"]}
    # the 20th working day after 09-30 is 11-03 (国庆 skipped, 10-10 worked): due at its end
    assert clocks == {"权威回应": "2026-10-02T10:00:00+08:00", "依申请公开答复": "2026-11-04T00:00:00+08:00"}


def test_a_working_day_deadline_reads_as_the_end_of_that_day():
    from monitor.alerts.render import clock_line
    from monitor.clock import show_due
    from monitor.incidents.escalation import ClockState

    due = WorkCalendar().add_working_days(parse_iso("2026-09-30T10:00:00+08:00"), 3)  # the end of 10-10
    assert show_due(due) == "2026-10-10 24:00"
    assert show_due(parse_iso("2026-10-10T17:30:00+08:00")) == "2026-10-10 17:30"
    line = clock_line(ClockState("依申请公开答复", parse_iso("2026-09-30T10:00:00+08:00"), due), parse_iso("2026-10-09T09:00:00+08:00"))
    assert "2026-10-10 24:00 截止" in line
