import pytest

from monitor.clock import parse_iso
from monitor.sources.boardtime import parse_board_time

NOW = parse_iso("2026-11-22T10:30:00+08:00")


@pytest.mark.parametrize("text, expected", [
    ("2019/2/28 11:25:05", "2019-02-28T11:25:05+08:00"),
    ("2021-03-02 21:41:26", "2021-03-02T21:41:26+08:00"),
    ("2020-7-19", "2020-07-19T00:00:00+08:00"),
    ("2019-12", "2019-12-01T00:00:00+08:00"),
    ("2020年7月30日", "2020-07-30T00:00:00+08:00"),
    ("02月23日 02:17", "2026-02-23T02:17:00+08:00"),
    ("7-3", "2026-07-03T00:00:00+08:00"),
    ("12-25", "2025-12-25T00:00:00+08:00"),  # no year and in the future: last year
    ("16:09", "2026-11-21T16:09:00+08:00"),  # later than now today: yesterday
    ("08:52", "2026-11-22T08:52:00+08:00"),
    ("3小时前", "2026-11-22T07:30:00+08:00"),
    ("3\u00a0天前", "2026-11-19T10:30:00+08:00"),
    ("5 分钟前", "2026-11-22T10:25:00+08:00"),
    ("刚刚", "2026-11-22T10:30:00+08:00"),
    ("昨天 14:05", "2026-11-21T14:05:00+08:00"),
    ("前天 08:00", "2026-11-20T08:00:00+08:00"),
    ("1614692486", "2021-03-02T21:41:26+08:00"),
    ("2026-11-20T08:00:00+00:00", "2026-11-20T16:00:00+08:00"),
])
def test_board_times(text, expected):
    assert parse_board_time(text, NOW) == parse_iso(expected)


def test_unreadable_and_explicit_formats():
    assert parse_board_time("上周某天", NOW) is None
    assert parse_board_time("2026-02-30", NOW) is None
    assert parse_board_time("20261120 0800", NOW, ["%Y%m%d %H%M"]) == parse_iso("2026-11-20T08:00:00+08:00")
    assert parse_board_time(1614692486000, NOW) == parse_iso("2021-03-02T21:41:26+08:00")
