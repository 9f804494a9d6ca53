"""The weekly report from a week built by replay, where every figure is known in advance."""

import csv
from datetime import datetime, timedelta
from email.header import decode_header, make_header

import pytest
from sqlalchemy import select

from monitor.cli import main
from monitor.clock import FakeClock, parse_iso
from monitor.config import load
from monitor.reports.period import date_range, iso_week, last_complete_week
from monitor.reports.schedule import Reporter, last_fire_at
from monitor.reports.stats import percentile
from monitor.reports.weekly import make_report
from monitor.store import db
from monitor.store.models import ReportRun

from .conftest import write_config, write_jsonl

FORMULA = "=cmd|' /C calc'!A0 化工厂爆炸"
SCRIPT = "<script>alert(1)</script>河道黑臭"
# W47 = 2026-11-16 (Mon) .. 2026-11-22 (Sun), Beijing time.
POSTS = [
    {"source": "12345", "id": "e1", "title": "上周的河道黑臭", "published_at": "2026-11-11T09:00:00+08:00"},
    {"source": "weibo", "id": "a1", "title": "化工厂爆炸", "url": "https://weibo.example/a1", "published_at": "2026-11-16T09:00:00+08:00"},
    {"source": "12345", "id": "b1", "title": SCRIPT, "published_at": "2026-11-17T10:00:00+08:00"},
    {"source": "12345", "id": "n1", "title": "建议增加公交线路", "published_at": "2026-11-18T10:00:00+08:00"},
    {"source": "12345", "id": "c1", "title": "又见黑臭水体", "published_at": "2026-11-20T08:00:00+08:00"},
    {"source": "weibo", "id": "d1", "title": FORMULA, "published_at": "2026-11-22T20:00:00+08:00"},
]
ACTIONS = [
    {"at": "2026-11-16T09:20:00+08:00", "post": "a1", "action": "ack", "actor": "值班员甲"},
    {"at": "2026-11-16T12:00:00+08:00", "post": "a1", "action": "met", "clock": "发布权威信息", "evidence": "https://gov.example/notice-1", "actor": "值班员甲"},
    {"at": "2026-11-17T10:00:00+08:00", "post": "a1", "action": "met", "clock": "召开新闻发布会", "actor": "科长乙"},
    {"at": "2026-11-17T12:00:00+08:00", "post": "a1", "action": "close", "actor": "科长乙"},
    {"at": "2026-11-17T11:00:00+08:00", "post": "b1", "action": "ack", "actor": "值班员丙"},
    {"at": "2026-11-18T10:00:00+08:00", "post": "b1", "action": "met", "clock": "权威回应", "actor": "值班员丙"},
]
NOW = parse_iso("2026-11-23T09:00:00+08:00")


def expected_charts() -> int:
    """Three charts where a CJK font is installed; none (and a note) where it is not."""
    from monitor.reports.charts import cjk_font

    return 3 if cjk_font() else 0


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("week")
    cfg_path = write_config(tmp / "cfg")
    url = f"sqlite:///{tmp / 'history.db'}"
    posts, actions = write_jsonl(tmp / "p.jsonl", POSTS), write_jsonl(tmp / "a.jsonl", ACTIONS)
    assert main(["replay", "--config", str(cfg_path), "--posts", str(posts), "--actions", str(actions), "--dry-run",
                 "--until", "2026-11-23T09:00:00+08:00", "--database", url, "--out", str(tmp / "r.json")]) == 0
    cfg = load(cfg_path)
    engine = db.make_engine(url)
    report, paths = make_report(db.session_factory(engine), cfg.main, iso_week("2026-W47"), NOW, ["xlsx", "docx", "html", "csv"], tmp / "out")
    yield report, {p.suffix if p.suffix != ".csv" else p.stem.split("_")[-1]: p for p in paths}, paths, cfg_path, url
    engine.dispose()


def rows(report, key):
    return report.table(key).rows


def test_known_figures(week):
    report, *_ = week
    summary = {r[0]: r[1:] for r in rows(report, "summary")}
    assert summary["新增舆情事件"][:3] == [4, 1, 3.0]
    assert summary["　其中重大"][:2] == [2, 0] and summary["　其中一般"][:2] == [2, 1]
    assert summary["采集帖文"][:2] == [5, 1]
    assert summary["命中关键词的帖文"][0] == 4
    assert summary["本期到期回应时限"][0] == 4
    assert [summary[k][0] for k in ("　按时完成", "　超时完成", "　超时未完成")] == [2, 1, 1]

    clocks = {r[0]: r[1:] for r in rows(report, "clocks")}
    #                        hours due on late open pend rate  p50   p90
    assert clocks["发布权威信息"] == [5.0, 1, 1, 0, 0, 0, 1.0, 3.0, 3.0]
    assert clocks["召开新闻发布会"] == [24.0, 1, 0, 1, 0, 0, 0.0, 25.0, 25.0]
    assert clocks["权威回应"] == [48.0, 2, 1, 0, 1, 0, 0.5, 24.0, 24.0]

    severity = {r[0]: r[1:] for r in rows(report, "severity")}
    #                       n  ack unack p50   p90  due on  rate
    assert severity["重大"] == [2, 1, 1, 20.0, 20.0, 2, 1, 0.5]
    assert severity["一般"] == [2, 1, 1, 60.0, 60.0, 2, 1, 0.5]
    assert severity["合计"][3:5] == [20.0, 60.0]

    dept = {r[0]: r[1:] for r in rows(report, "department")}
    assert dept["应急管理局"] == [2, 2, 1, 1, 0, 0.5]
    assert dept["生态环境局"] == [2, 2, 1, 0, 1, 0.5]

    overdue = rows(report, "overdue")
    assert [(r[0], r[4], r[6], r[7], r[8]) for r in overdue] == [
        (2, "召开新闻发布会", "超时完成", 1.0, "科长乙"),  # #1 is last week's incident
        (4, "权威回应", "超时未完成", 16.0, ""),  # late by the week's end, 23 Nov 00:00
    ]
    daily = {r[0].isoformat(): r[1:] for r in rows(report, "daily")}
    assert daily["2026-11-16"] == [0, 1, 0, 0, 1] and daily["2026-11-22"] == [0, 1, 0, 0, 1]
    assert sum(r[-1] for r in rows(report, "daily")) == 4
    sources = {r[0]: r[1:] for r in rows(report, "source")}
    assert sources == {"weibo": [2, 2], "12345": [2, 3]}
    timeline = [(r[2], r[3]) for r in rows(report, "timeline") if r[0] == 2]
    assert timeline == [("发现（首条帖文）", "system"), ("确认收到", "值班员甲"), ("登记回应", "值班员甲"),
                        ("登记回应", "科长乙"), ("关闭", "科长乙")]
    assert "https://gov.example/notice-1" in rows(report, "timeline")[2][4]
    assert report.headline[1] == "本期到期回应时限 4 个，按时完成 2 个，按时率 50.0%；超时完成 1 个，超时未完成 1 个。"


def test_xlsx_has_typed_cells_frozen_headers_and_no_formulas(week):
    from openpyxl import load_workbook

    _report, files, paths, *_ = week
    wb = load_workbook(files[".xlsx"])
    ws = wb["回应时限完成情况"]
    assert ws.freeze_panes == "A2"
    assert [c.value for c in ws[1]][:3] == ["时限", "时长（小时）", "本期到期"]
    assert ws["H2"].value == 1.0 and ws["H2"].number_format == "0.0%"
    assert ws["H4"].value == 0.5 and isinstance(ws["C4"].value, int)
    assert ws.column_dimensions["A"].width >= 14
    overdue = wb["超时的回应时限"]
    assert isinstance(overdue["F2"].value, datetime) and overdue["F2"].value == datetime(2026, 11, 17, 9, 0)
    top = wb["重点事件（按帖文数）"]
    titles = [row[3].value for row in top.iter_rows(min_row=2)]
    assert "'" + FORMULA in titles
    for sheet in wb.worksheets:  # no cell anywhere is a formula
        for row in sheet.iter_rows():
            assert not any(c.data_type == "f" for c in row)
    assert sum(1 for p in paths if p.suffix == ".png") == expected_charts()  # saved beside the workbook


def test_docx_has_tables_charts_and_the_text_as_typed(week):
    from docx import Document

    _report, files, *_ = week
    doc = Document(files[".docx"])
    assert doc.paragraphs[0].text == "舆情回应周报（2026-W47）"
    assert len(doc.inline_shapes) == expected_charts()
    clock_table = next(t for t in doc.tables if t.rows[0].cells[0].text == "时限")
    assert [c.text for c in clock_table.rows[3].cells][:8] == ["权威回应", "48", "2", "1", "0", "1", "0", "50.0%"]
    texts = [c.text for t in doc.tables for r in t.rows for c in r.cells]
    assert FORMULA in texts  # Word runs no formulas: shown exactly as posted


def test_html_escapes_post_text_and_embeds_charts(week):
    _report, files, *_ = week
    page = files[".html"].read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("data:image/png;base64,") == expected_charts()


def test_csv_is_excel_friendly_and_neutralised(week):
    _report, _files, paths, *_ = week
    top = next(p for p in paths if p.name.endswith("重点事件（按帖文数）.csv"))
    raw = top.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8 Chinese
    rows_ = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert any(r[3] == "'" + FORMULA for r in rows_[1:])
    clocks = next(p for p in paths if p.name.endswith("回应时限完成情况.csv"))
    first = list(csv.reader(clocks.read_text(encoding="utf-8-sig").splitlines()))[1]
    assert first[:3] == ["发布权威信息", "5.0", "1"] and first[7] == "1.0"


def test_report_cli(week, tmp_path, capsys):
    _report, _files, _paths, cfg_path, url = week
    assert main(["report", "weekly", "--week", "2026-W47", "--format", "csv", "--out", str(tmp_path), "--config", str(cfg_path), "--database", url]) == 0
    out = capsys.readouterr().out
    assert "按时率 50.0%" in out and len(list(tmp_path.glob("*.csv"))) == len(_report.tables)
    assert main(["report", "weekly", "--from", "2026-11-16", "--to", "2026-11-22", "--format", "xlsx", "--out", str(tmp_path), "--config", str(cfg_path), "--database", url]) == 0
    assert main(["report", "weekly", "--week", "2026-W99", "--config", str(cfg_path), "--database", url]) == 2
    assert "没有第 99 周" in capsys.readouterr().err
    assert main(["report", "weekly", "--format", "pdf", "--config", str(cfg_path), "--database", url]) == 2


def test_periods_and_percentiles():
    w = iso_week("2026-W47")
    assert w.start.isoformat() == "2026-11-15T16:00:00+00:00" and w.end - w.start == timedelta(days=7)
    assert w.previous().label == "2026-W46"
    assert last_complete_week(parse_iso("2026-11-23T00:30:00+08:00")).label == "2026-W47"
    assert last_complete_week(parse_iso("2026-11-22T23:30:00+08:00")).label == "2026-W46"
    assert iso_week("2026-W01").start.isoformat() == "2025-12-28T16:00:00+00:00"
    assert date_range("2026-11-01", "2026-11-01").end - date_range("2026-11-01", "2026-11-01").start == timedelta(days=1)
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([1, 2, 3, 4], 90) == 4 and percentile([], 50) is None


def test_no_cjk_font_means_no_charts_and_a_clear_note(week, monkeypatch, tmp_path):
    import monitor.reports.charts as charts

    _report, _files, _paths, cfg_path, url = week
    monkeypatch.setattr(charts, "cjk_font", lambda: None)
    engine = db.make_engine(url)
    report, paths = make_report(db.session_factory(engine), load(cfg_path).main, iso_week("2026-W47"), NOW, ["docx", "html"], tmp_path)
    engine.dispose()
    assert report.charts == [] and "fonts-wqy-microhei" in report.font_note
    assert "fonts-wqy-microhei" in (tmp_path / "舆情周报_2026-W47.html").read_text(encoding="utf-8")


def test_cjk_font_is_found_where_one_is_installed():
    from monitor.reports.charts import cjk_font

    if cjk_font() is None:
        pytest.skip("no CJK font on this machine: apt-get install fonts-wqy-microhei (see README)")
    assert cjk_font() in ("WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC",
                          "Source Han Sans CN", "AR PL UMing CN", "SimHei", "Microsoft YaHei", "PingFang SC")


# ---- the scheduled run -----------------------------------------------------------------


@pytest.mark.parametrize("expr, weekdays", [
    ("0 9 * * 1", "mon"), ("0 9 * * 0", "sun"), ("0 9 * * 7", "sun"), ("0 9 * * 1-5", "mon,tue,wed,thu,fri"),
    ("0 9 * * 5-7", "sun,fri,sat"), ("0 9 * * */2", "sun,tue,thu,sat"), ("0 9 * * mon,wed", "mon,wed"), ("0 9 * * *", "*"),
])
def test_crontab_weekdays_follow_crontab5(expr, weekdays):
    """The days of a fortnight on which the expression fires (Beijing time), as crontab(5) reads them."""
    names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    monday = parse_iso("2026-11-16T12:00:00+08:00")
    fired = {names[d % 7] for d in range(14) if last_fire_at(expr, monday + timedelta(days=d), monday + timedelta(days=d - 1)) is not None}
    assert fired == (set(names) if weekdays == "*" else set(weekdays.split(",")))


def test_crontab_day_of_month_or_weekday_as_cron_reads_it():
    # crontab(5): with both restricted, either matches (the 1st of the month, or any Monday).
    assert last_fire_at("0 9 1 * 1", parse_iso("2026-12-01T10:00:00+08:00"), parse_iso("2026-11-30T10:00:00+08:00")) is not None  # a Tuesday the 1st
    assert last_fire_at("0 9 1 * 1", parse_iso("2026-11-30T10:00:00+08:00"), parse_iso("2026-11-29T10:00:00+08:00")) is not None  # a Monday


def test_cron_fire_times():
    since = parse_iso("2026-11-16T09:00:00+08:00")
    assert last_fire_at("0 9 * * 1", parse_iso("2026-11-23T08:59:00+08:00"), since) is None
    assert last_fire_at("0 9 * * 1", parse_iso("2026-11-23T09:00:00+08:00"), since) == parse_iso("2026-11-23T09:00:00+08:00")


def test_monday_report_is_mailed_once_with_attachments_and_retried_on_failure(week, tmp_path, smtp, receiver):
    box, port = smtp
    _report, _files, _paths, cfg_path, url = week
    folder = tmp_path / "cfg"
    write_config(folder, receiver_url=receiver.url("/hook"), database_url=url)
    with (folder / "apprise.yml").open("a", encoding="utf-8") as f:
        f.write(f"  - mailto://127.0.0.1:{port}?from=monitor@example.gov.cn&to=leader@example.gov.cn&mode=insecure:\n      tag: leader\n")
    cfg = load(folder / "monitor.toml")
    from monitor.app import load_channels

    engine = db.make_engine(url)
    sessions = db.session_factory(engine)
    clock = FakeClock(parse_iso("2026-11-22T12:00:00+08:00"))
    reporter = Reporter(cfg, sessions, load_channels(cfg), clock)
    assert reporter.run_due() == 0  # first look: last Monday's run predates this installation
    receiver.fail_posts = 1  # the webhook target fails once
    clock.set(parse_iso("2026-11-23T08:59:00+08:00"))
    assert reporter.run_due() == 0 and box.messages == []
    clock.set(parse_iso("2026-11-23T09:00:00+08:00"))
    assert reporter.run_due() == 0  # mail went out, the webhook failed: retried later
    assert len(box.messages) == 1
    clock.set(parse_iso("2026-11-23T09:01:00+08:00"))
    assert reporter.run_due() == 0  # back-off: not yet
    clock.set(parse_iso("2026-11-23T09:06:00+08:00"))
    assert reporter.run_due() == 1
    clock.set(parse_iso("2026-11-23T12:00:00+08:00"))
    assert reporter.run_due() == 0
    assert len(box.messages) == 1  # the mail target was not sent it again
    assert len(receiver.posts) == 1 and receiver.posts[0]["payload"]["title"].startswith("舆情回应周报（2026-W47")
    message = box.messages[0]
    assert str(make_header(decode_header(message["Subject"]))) == "舆情回应周报（2026-W47，2026年11月16日—11月22日）"
    names = sorted(str(make_header(decode_header(p.get_filename()))) for p in message.walk() if p.get_filename())
    assert names == ["weekly-report-2026-W47.docx", "weekly-report-2026-W47.xlsx"]
    xlsx = next(p for p in message.walk() if p.get_filename() == "weekly-report-2026-W47.xlsx")
    assert xlsx.get_payload(decode=True)[:2] == b"PK"  # the workbook itself arrived
    with sessions() as s:
        runs = {r.period: (r.state, r.attempts) for r in s.scalars(select(ReportRun))}
    assert runs == {"2026-W46": ("skipped", 0), "2026-W47": ("sent", 2)}
    engine.dispose()


def test_report_that_keeps_failing_is_given_up_and_duty_is_told(week, tmp_path, receiver):
    _report, _files, _paths, cfg_path, url = week
    folder = tmp_path / "cfg"
    write_config(folder, receiver_url=receiver.url("/hook"), database_url=url.replace("history.db", "fail.db"))
    cfg = load(folder / "monitor.toml")
    from monitor.app import load_channels

    engine = db.make_engine(cfg.database_url())
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    clock = FakeClock(parse_iso("2026-11-22T12:00:00+08:00"))
    reporter = Reporter(cfg, sessions, load_channels(cfg), clock)
    reporter.run_due()
    receiver.fail_posts = 10_000
    for minutes in range(0, 13 * 60, 30):
        clock.set(parse_iso("2026-11-23T09:00:00+08:00") + timedelta(minutes=minutes))
        reporter.run_due()
    with sessions() as s:
        run = s.scalars(select(ReportRun).where(ReportRun.period == "2026-W47")).one()
    assert run.state == "failed" and "500" in run.last_error
    receiver.fail_posts = 0
    engine.dispose()


def test_running_daemon_sends_the_monday_report(tmp_path, receiver):
    """The daemon's own report job, at a simulated Monday 09:00, after a week it has seen."""
    import time as _time

    from monitor.daemon import Daemon

    folder = tmp_path / "cfg"
    write_config(folder, receiver_url=receiver.url("/hook"))
    cfg = load(folder / "monitor.toml")
    engine = db.make_engine(cfg.database_url())
    db.upgrade(engine)
    with db.session_factory(engine).begin() as s:  # this installation already ran last Monday
        s.add(ReportRun(scheduled_at=datetime(2026, 11, 16, 1, 0), period="2026-W46", state="sent", attempts=1,
                        next_attempt_at=datetime(2026, 11, 16, 1, 0), sent_targets=[], files=[]))
    engine.dispose()
    daemon = Daemon(cfg, FakeClock(parse_iso("2026-11-23T09:00:30+08:00")))
    daemon.start()
    try:
        deadline = _time.monotonic() + 20
        while not any(t.startswith("舆情回应周报（2026-W47") for t in receiver.titles()) and _time.monotonic() < deadline:
            _time.sleep(0.05)
    finally:
        daemon.stop()
    assert [t for t in receiver.titles() if t.startswith("舆情回应周报")] == ["舆情回应周报（2026-W47，2026年11月16日—11月22日）"]
    assert (folder / "state" / "reports" / "2026-W47" / "舆情周报_2026-W47.xlsx").exists()
