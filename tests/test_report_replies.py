"""Real 问政 messages with their official replies (shared/data/complaints/tipdm2020_wenzheng,
attachment4), replayed through `monitor replay` with the reply as the response: the report's
board figures equal a direct computation from the CSV."""

import csv
import importlib.util
import math
from datetime import datetime, timedelta

import pytest

from monitor.config import load_rules
from monitor.matching.matcher import Matcher

from .conftest import REPO, shared

LIMIT = 400  # the first 400 messages (2012–2019): the whole file is bench/replies.py's


def _bench():
    spec = importlib.util.spec_from_file_location("bench_replies", REPO / "bench" / "replies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _time(text: str) -> datetime:
    text = text.strip().replace("-", "/")
    return datetime.strptime(text, "%Y/%m/%d %H:%M:%S" if ":" in text else "%Y/%m/%d")


def _nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def _within_working_days(sent: datetime, replied: datetime, n: int) -> bool:
    """Replied by the end of the n-th working day after the day it was sent (that day not counted)."""
    import chinese_calendar

    day, counted = sent.date(), 0
    while counted < n:
        day += timedelta(days=1)
        counted += chinese_calendar.is_workday(day)
    return replied < datetime.combine(day + timedelta(days=1), datetime.min.time())


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    path = shared("complaints/tipdm2020_wenzheng/attachment4_messages_with_replies.csv")
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:LIMIT]
    out = _bench().run(tmp_path_factory.mktemp("replies"), LIMIT)
    return rows, out["tables"]


def test_board_figures_equal_a_direct_computation_from_the_csv(replayed):
    rows, tables = replayed
    hours = [round((_time(r["答复时间"]) - _time(r["留言时间"])).total_seconds() / 3600, 2) for r in rows]
    hours = [max(0.0, h) for h in hours]
    board = tables["留言办理"][0]
    assert board["分类"] == "全部留言" and int(board["留言"]) == len(rows) and int(board["已答复"]) == len(rows)
    assert float(board["答复用时中位数（小时）"]) == _nearest_rank(hours, 50)
    assert float(board["答复用时P90（小时）"]) == _nearest_rank(hours, 90)
    assert int(board["48小时内答复"]) == sum(1 for h in hours if h <= 48)
    for n in (3, 5, 15):
        expected = sum(1 for r in rows if _within_working_days(_time(r["留言时间"]), _time(r["答复时间"]), n))
        assert int(board[f"{n}个工作日内答复"]) == expected, n
        assert float(board[f"{n}个工作日内答复率"]) == pytest.approx(expected / len(rows), abs=5e-4)
    # the latency distribution adds up, bucket by bucket
    limits = {"1 天内": (0, 24), "1–2 天": (24, 48), "2–5 天": (48, 120), "5–15 天": (120, 360), "15–30 天": (360, 720),
              "30 天以上": (720, math.inf)}
    shown = {r["答复用时"]: int(r["留言"]) for r in tables["留言答复用时分布"]}
    for label, (low, high) in limits.items():
        assert shown[label] == sum(1 for h in hours if (low < h <= high) or (low == 0 and h == 0)), label
    assert shown["未答复"] == 0


def test_per_category_figures_follow_the_rules_each_message_matched(replayed):
    rows, tables = replayed
    matcher = Matcher(load_rules([REPO / "bench" / "rules" / "wenzheng.toml"]))
    expected: dict[str, int] = {}
    for r in rows:
        hits = matcher.match(r["留言主题"].strip(), r["留言详情"].strip())
        label = hits[0].rule.category if hits else "（未命中规则）"
        expected[label] = expected.get(label, 0) + 1
    shown = {r["分类"]: int(r["留言"]) for r in tables["留言办理（按分类）"]}
    assert shown == expected and len(shown) >= 6


def test_each_reply_answers_its_incidents_clock(replayed):
    """The replies meet the 48 h 权威回应 clock (reply_meets): by the period's end, which is after
    the last reply, no incident is left unanswered, and every answer was recorded by the board."""
    _rows, tables = replayed
    answer = {r["时限"]: r for r in tables["回应时限完成情况"]}["权威回应"]
    assert int(answer["本期到期"]) > 0 and int(answer["超时未完成"]) == 0
    assert int(answer["按时完成"]) + int(answer["超时完成"]) == int(answer["本期到期"])
    kpi = {r["指标"]: r for r in tables["考核指标"]}
    assert kpi["已作权威回应的事件"]["达标"] == kpi["已作权威回应的事件"]["应计"]
