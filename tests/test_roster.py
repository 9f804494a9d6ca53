"""The duty roster, the escalation policy per severity, handoff digests: pure and by replay."""

import json
from datetime import timedelta

import pytest

from monitor.alerts.roster import next_shift_start, on_duty, recipients, shift_starts
from monitor.cli import main
from monitor.clock import parse_iso
from monitor.config import MainConfig
from monitor.incidents.escalation import ClockState, IncidentState, Policy, collapse, due_steps, next_step_at, quiet_end

from .conftest import write_config, write_jsonl

ROSTER = """
[[person]]
name = "张三"
tags = ["zhangsan"]
[[person]]
name = "李四"
tags = ["lisi"]
[[person]]
name = "王五"
tags = ["wangwu"]
[[person]]
name = "赵科长"
tags = ["zhao"]
[[shift]]
name = "白班"
tier = "值班员"
people = ["张三"]
days = ["mon", "tue", "wed", "thu", "fri"]
start = "08:30"
end = "17:30"
[[shift]]
name = "夜班"
tier = "值班员"
people = ["李四"]
start = "17:30"
end = "08:30"
[[shift]]
name = "国庆值班"
tier = "值班员"
people = ["王五"]
dates = [2026-10-01, 2026-10-02]
[[shift]]
name = "应急局"
tier = "科室负责人"
people = ["赵科长"]
departments = ["应急管理局"]
"""


def cfg_with(extra=""):
    import tomllib

    return MainConfig.model_validate(tomllib.loads(ROSTER + extra))


def at(text):
    return parse_iso(text)


@pytest.mark.parametrize("when, duty", [
    ("2026-11-23T09:00:00+08:00", ["张三"]),  # Monday day shift
    ("2026-11-23T17:30:00+08:00", ["李四"]),  # the night shift starts
    ("2026-11-24T08:29:00+08:00", ["李四"]),  # still the night shift, past midnight
    ("2026-11-22T12:00:00+08:00", []),  # Sunday noon: nobody on the roster
    ("2026-10-01T09:00:00+08:00", ["王五"]),  # the holiday roster replaces the weekday one
    ("2026-10-02T23:00:00+08:00", ["王五"]),
])
def test_who_is_on_duty(when, duty):
    assert [p.name for p in on_duty(cfg_with(), "值班员", "", at(when))] == duty


def test_recipients_fall_back_to_the_tier_and_follow_departments():
    cfg = cfg_with()
    assert recipients(cfg, 0, "", at("2026-11-22T12:00:00+08:00")) == ("duty",)
    assert recipients(cfg, 1, "应急管理局", at("2026-11-23T09:00:00+08:00")) == ("zhao",)
    assert recipients(cfg, 1, "生态环境局", at("2026-11-23T09:00:00+08:00")) == ("lead",)


def test_shift_starts_for_handoffs():
    cfg = cfg_with()
    starts = shift_starts(cfg, at("2026-11-23T00:00:00+08:00"), at("2026-11-24T00:00:00+08:00"), "值班员")
    assert [(s.shift.name, s.at) for s in starts] == [("白班", at("2026-11-23T08:30:00+08:00")), ("夜班", at("2026-11-23T17:30:00+08:00"))]
    assert next_shift_start(cfg, at("2026-11-23T17:30:00+08:00"), "值班员") == at("2026-11-24T08:30:00+08:00")


def test_config_errors_for_unknown_people_and_tiers():
    with pytest.raises(Exception, match="未在 \\[\\[person\\]\\] 中定义"):
        cfg_with('[[shift]]\ntier = "值班员"\npeople = ["无名氏"]\n')
    with pytest.raises(Exception, match="不在 \\[\\[tier\\]\\] 中"):
        cfg_with('[[shift]]\ntier = "组长"\npeople = ["张三"]\n')


# ---- the policy, pure -----------------------------------------------------------------------

T0 = at("2026-11-23T10:00:00+08:00")
H = timedelta(hours=1)
FIVE = ClockState("发布权威信息", T0, T0 + 5 * H)


def test_ack_timeout_walks_up_the_ladder_and_stops_at_the_top_or_on_ack():
    policy = Policy(("50%",), 2 * H, tiers=3, ack_timeout=timedelta(minutes=15))
    steps = [s for s in due_steps(IncidentState(1, False, T0, None), [FIVE], policy, T0 + H) if s.clock is None]
    assert [(s.key, s.tier, s.at - T0) for s in steps] == [("1:ack:timeout-1", 1, timedelta(minutes=15)), ("1:ack:timeout-2", 2, timedelta(minutes=30))]
    acked = IncidentState(1, False, T0, T0 + timedelta(minutes=20))
    assert [s.key for s in due_steps(acked, [FIVE], policy, T0 + H) if s.clock is None] == ["1:ack:timeout-1"]
    assert next_step_at(IncidentState(1, False, T0, None), [FIVE], policy, T0) == T0 + timedelta(minutes=15)


def test_first_tier_and_reminders_suppressed_once_a_higher_tier_is_called():
    policy = Policy(("50%", "1h", "15m"), 2 * H, tiers=3, first_tier=0, ack_timeout=timedelta(minutes=15))
    steps = due_steps(IncidentState(1, False, T0, None), [FIVE], policy, T0 + 3 * H)
    send, superseded = collapse(steps)
    assert "1:发布权威信息:remind-50%" in [s.key for s in superseded]
    assert [s.key for s in send] == ["1:ack:timeout-1", "1:ack:timeout-2"]
    # one at a time, as the daemon sees them: after the call-in, the 2.5 h reminder is dropped
    later = [s for s in steps if s.key == "1:发布权威信息:remind-50%"]
    assert collapse(later, escalated_tier=2) == ([], later)


def test_quiet_hours_hold_reminders():
    quiet = ("23:00", "07:00")
    assert quiet_end(at("2026-11-23T23:30:00+08:00"), quiet) == at("2026-11-24T07:00:00+08:00")
    assert quiet_end(at("2026-11-24T06:00:00+08:00"), quiet) == at("2026-11-24T07:00:00+08:00")
    assert quiet_end(at("2026-11-24T12:00:00+08:00"), quiet) == at("2026-11-24T12:00:00+08:00")
    night = ClockState("权威回应", at("2026-11-23T23:10:00+08:00"), at("2026-11-25T23:10:00+08:00"))
    policy = Policy(("1%",), 2 * H, tiers=3, quiet=quiet)
    [step] = due_steps(IncidentState(1), [night], policy, at("2026-11-24T08:00:00+08:00"))
    assert step.at == at("2026-11-24T07:00:00+08:00")  # due at 23:38, held until quiet hours end


# ---- replays ----------------------------------------------------------------------------------

POLICY = """
[escalation]
reminders = ["50%", "1h", "15m"]
ack_timeout = "15m"
quiet = { start = "23:00", end = "07:00" }
"""
EXPLOSION = [{"source": "weibo", "id": "p1", "title": "化工厂爆炸", "body": "", "published_at": "2026-11-23T10:00:00+08:00"}]


def replay(tmp_path, posts, actions=(), until="2026-11-23T15:30:00+08:00", extra=POLICY):
    cfg = write_config(tmp_path / "cfg", extra=ROSTER + extra)
    args = ["replay", "--config", str(cfg), "--posts", str(write_jsonl(tmp_path / "p.jsonl", posts)), "--dry-run",
            "--out", str(tmp_path / "r.json"), "--until", until]
    if actions:
        args += ["--actions", str(write_jsonl(tmp_path / "a.jsonl", list(actions)))]
    assert main(args) == 0
    return json.loads((tmp_path / "r.json").read_text())


def test_replay_major_incident_never_acknowledged_reaches_the_leader(tmp_path):
    result = replay(tmp_path, EXPLOSION, until="2026-11-23T11:00:00+08:00")
    alerts = [(a["at"][11:16], a["tags"], a["title"]) for a in result["alerts"]]
    assert alerts[0] == ("10:00", ["zhangsan"], "【重大】新舆情事件 #1：危化品爆炸")
    assert alerts[1] == ("10:15", ["zhao"], "【重大】无人确认升级 #1：危化品爆炸发现 15分钟 仍未确认")  # 应急管理局's own 科室负责人
    assert alerts[2][:2] == ("10:30", ["leader"])  # 分管领导: nobody rostered, the tier's own target
    steps = result["incidents"][0]["steps"]
    assert [(s["key"], s["tier"]) for s in steps] == [("1:ack:timeout-1", "科室负责人"), ("1:ack:timeout-2", "分管领导")]


def test_replay_acknowledged_at_30_minutes_stays_with_duty_until_the_clock_nears(tmp_path):
    actions = [{"at": "2026-11-23T10:10:00+08:00", "post": "p1", "action": "ack"}]
    result = replay(tmp_path, EXPLOSION, actions, until="2026-11-23T15:05:00+08:00",
                    extra=POLICY.replace('ack_timeout = "15m"', 'ack_timeout = "30m"'))
    steps = [(s["key"].split(":", 1)[1], s["tier"], s["at"][11:16]) for s in result["incidents"][0]["steps"]]
    assert steps == [
        ("发布权威信息:remind-50%", "值班员", "12:30"),
        ("发布权威信息:remind-1h-before", "值班员", "14:00"),
        ("发布权威信息:remind-15m-before", "值班员", "14:45"),
        ("发布权威信息:overdue-0", "科室负责人", "15:00"),
    ]
    reminder_tags = {tuple(a["tags"]) for a in result["alerts"] if "提醒" in a["title"]}
    assert reminder_tags == {("zhangsan",)}  # the day officer on duty


def test_replay_across_a_shift_change_hands_over_to_the_night_officer(tmp_path):
    posts = [{"source": "12345", "id": "q1", "title": "河道黑臭", "body": "", "published_at": "2026-11-23T16:00:00+08:00"}]
    actions = [{"at": "2026-11-23T16:05:00+08:00", "post": "q1", "action": "ack"}]
    result = replay(tmp_path, posts, actions, until="2026-11-24T16:30:00+08:00")
    handoffs = [a for a in result["alerts"] if a["title"].startswith("【交接班】")]
    evening = next(a for a in handoffs if a["at"] == "2026-11-23T17:30:00+08:00")
    assert evening["tags"] == ["lisi"] and evening["title"] == "【交接班】夜班 2026-11-23 17:30 接班：未关闭事件 1 起"
    assert "#1【一般】黑臭水体：河道黑臭" in evening["body"] and "权威回应：2026-11-25 16:00 截止，剩余 1天22小时" in evening["body"]
    morning = next(a for a in handoffs if a["at"] == "2026-11-24T08:30:00+08:00")
    assert morning["tags"] == ["zhangsan"]
    # the 50 % reminder falls at 16:00 next day: the day officer gets it
    reminder = next(a for a in result["alerts"] if "提醒" in a["title"])
    assert reminder["tags"] == ["zhangsan"] and reminder["at"] == "2026-11-24T16:00:00+08:00"


def test_extreme_severity_ignores_quiet_hours(tmp_path):
    night = [{"source": "weibo", "id": "n1", "title": "隧道坍塌", "body": "", "published_at": "2026-11-23T22:00:00+08:00"}]
    words = '[[rule]]\nname = "特大事故"\nterms = ["坍塌"]\nseverity = "特别重大"\n'
    cfg = write_config(tmp_path / "cfg", extra=ROSTER + POLICY.replace('ack_timeout = "15m"\n', ""), watchwords=words)
    out = tmp_path / "r.json"
    assert main(["replay", "--config", str(cfg), "--posts", str(write_jsonl(tmp_path / "p.jsonl", night)), "--dry-run",
                 "--out", str(out), "--until", "2026-11-24T03:00:00+08:00"]) == 0
    steps = json.loads(out.read_text())["incidents"][0]["steps"]
    assert ("1:发布权威信息:remind-50%", "2026-11-24T00:30:00+08:00") in [(s["key"], s["at"]) for s in steps]


def test_quiet_hours_have_one_meaning(tmp_path):
    """[escalation] quiet holds reminders of 较大 and 一般; 重大 only when its own policy says
    quiet = true; 特别重大 never; the last reminder before a deadline of 24 h or less never."""
    from monitor.app import build
    from monitor.clock import FakeClock
    from monitor.config import load

    path = write_config(tmp_path / "cfg", extra='[escalation]\nquiet = { start = "23:00", end = "07:00" }\n')
    incidents = build(load(path), FakeClock(at("2026-11-23T20:00:00+08:00")), dry_run=True).incidents
    assert incidents.policy_for("一般").quiet == ("23:00", "07:00") and incidents.policy_for("较大").quiet == ("23:00", "07:00")
    assert incidents.policy_for("重大").quiet is None and incidents.policy_for("特别重大").quiet is None
    path = write_config(tmp_path / "cfg2", extra='[escalation]\nquiet = { start = "23:00", end = "07:00" }\n'
                                                 'severity = { "重大" = { quiet = true }, "特别重大" = { quiet = true } }\n')
    incidents = build(load(path), FakeClock(at("2026-11-23T20:00:00+08:00")), dry_run=True).incidents
    assert incidents.policy_for("重大").quiet is not None and incidents.policy_for("特别重大").quiet is None
    quiet = ("23:00", "07:00")
    # 重大 made quiet, an incident at 20:00 with its 5 h clock: 50% at 22:30; 1 h before at 00:00 is the last: on time
    five = ClockState("发布权威信息", at("2026-11-23T20:00:00+08:00"), at("2026-11-24T01:00:00+08:00"))
    steps = due_steps(IncidentState(1), [five], Policy(("50%", "1h"), 2 * H, tiers=3, quiet=quiet), at("2026-11-24T00:30:00+08:00"))
    assert [s.at for s in steps] == [at("2026-11-23T22:30:00+08:00"), at("2026-11-24T00:00:00+08:00")]
    # a 48 h clock: its night reminders wait for 07:00 (the last one would then be past the deadline: the escalation says it)
    long = ClockState("权威回应", at("2026-11-22T01:00:00+08:00"), at("2026-11-24T01:00:00+08:00"))
    steps = due_steps(IncidentState(2), [long], Policy(("50%", "1h"), 2 * H, tiers=3, quiet=quiet), at("2026-11-24T00:30:00+08:00"))
    assert [s.at for s in steps] == [at("2026-11-23T07:00:00+08:00")]
