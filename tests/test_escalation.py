"""Escalation steps as a pure function: no store, no clock but the one passed in."""

from datetime import timedelta

from monitor.incidents.clocks import clock_start, plan_clocks
from monitor.incidents.escalation import ClockState, IncidentState, Policy, collapse, due_steps, next_step_at
from monitor.config import DEFAULT_CLOCKS

from .conftest import utc

T0 = utc(2026, 11, 20, 0, 0)
H = timedelta(hours=1)
POLICY = Policy(("50%", "1h"), timedelta(hours=2), tiers=3)


def five_hour_clock(**kw):
    return ClockState("发布权威信息", T0, T0 + 5 * H, **kw)


def test_plan_clocks_follow_the_published_rules():
    rules = list(DEFAULT_CLOCKS)
    assert [(c.name, c.due_at - T0) for c in plan_clocks("重大", rules, T0)] == [("发布权威信息", 5 * H), ("召开新闻发布会", 24 * H)]
    assert [(c.name, c.due_at - T0) for c in plan_clocks("特别重大", rules, T0)][0] == ("发布权威信息", 5 * H)
    assert [(c.name, c.due_at - T0) for c in plan_clocks("一般", rules, T0)] == [("权威回应", 48 * H)]
    assert [c.name for c in plan_clocks("较大", rules, T0)] == ["权威回应"]


def test_clock_start_uses_fetch_time_when_published_is_missing_or_future():
    assert clock_start(T0, T0 + H) == T0
    assert clock_start(None, T0 + H) == T0 + H
    assert clock_start(T0 + 2 * H, T0 + H) == T0 + H


def test_reminders_then_escalations_up_the_ladder():
    # On time, tick by tick: each step falls due at its moment, one tier higher each time.
    fired = {}
    for hours in (2.5, 4, 5, 7, 9, 11):
        for s in due_steps(IncidentState(7, False), [five_hour_clock()], POLICY, T0 + hours * H):
            fired.setdefault(s.key, (s.kind, s.tier, s.at - T0))
    assert list(fired.items()) == [
        ("7:发布权威信息:remind-50%", ("reminder", 0, 2.5 * H)),
        ("7:发布权威信息:remind-1h-before", ("reminder", 0, 4 * H)),
        ("7:发布权威信息:overdue-0", ("escalation", 1, 5 * H)),
        ("7:发布权威信息:overdue-1", ("escalation", 2, 7 * H)),
        ("7:发布权威信息:overdue-2", ("escalation", 2, 9 * H)),
        ("7:发布权威信息:overdue-3", ("escalation", 2, 11 * H)),
    ]


def test_far_behind_clock_yields_one_step_per_tier_not_one_per_missed_repeat():
    # A 1970 start, or a week down: the steps below the top tier and the newest at the top.
    ancient = ClockState("发布权威信息", utc(1970, 1, 1), utc(1970, 1, 1, 5))
    steps = due_steps(IncidentState(7, False), [ancient], POLICY, T0)
    assert [(s.label, s.tier) for s in steps if s.kind == "escalation"] == [("overdue-0", 1), (f"overdue-{len(steps) and int((T0 - utc(1970, 1, 1, 5)) / (2 * H))}", 2)]
    assert len(steps) <= len(POLICY.reminders) + POLICY.tiers


def test_nothing_due_before_the_first_reminder_and_keys_are_stable():
    assert due_steps(IncidentState(1, False), [five_hour_clock()], POLICY, T0 + 2 * H) == []
    a = due_steps(IncidentState(1, False), [five_hour_clock()], POLICY, T0 + 6 * H)
    b = due_steps(IncidentState(1, False), [five_hour_clock()], POLICY, T0 + 6 * H)
    assert a == b


def test_met_clock_and_closed_incident_stop_everything():
    assert due_steps(IncidentState(1, False), [five_hour_clock(met_at=T0 + H)], POLICY, T0 + 30 * H) == []
    assert due_steps(IncidentState(1, True), [five_hour_clock()], POLICY, T0 + 30 * H) == []
    assert next_step_at(IncidentState(1, True), [five_hour_clock()], POLICY, T0) is None
    assert next_step_at(IncidentState(1, False), [five_hour_clock(met_at=T0)], POLICY, T0) is None


def test_next_step_at_walks_the_schedule():
    clocks = [five_hour_clock()]
    at, seen = T0, []
    for _ in range(5):
        at = next_step_at(IncidentState(1, False), clocks, POLICY, at)
        seen.append(at - T0)
    assert seen == [2.5 * H, 4 * H, 5 * H, 7 * H, 9 * H]


def test_reminder_specs_landing_together_make_one_and_short_clocks_skip_impossible_ones():
    policy = Policy(("50%", "1h"), timedelta(hours=1), tiers=2)
    two_hours = ClockState("c", T0, T0 + 2 * H)
    assert [s.label for s in due_steps(IncidentState(1, False), [two_hours], policy, T0 + 2 * H) if s.kind == "reminder"] == ["remind-50%"]
    policy = Policy(("6h",), timedelta(hours=1), tiers=2)
    assert [s.kind for s in due_steps(IncidentState(1, False), [five_hour_clock()], policy, T0 + 5 * H)] == ["escalation"]


def test_single_tier_escalates_to_itself():
    steps = due_steps(IncidentState(1, False), [five_hour_clock()], Policy((), timedelta(hours=1), tiers=1), T0 + 6 * H)
    assert [(s.label, s.tier) for s in steps] == [("overdue-1", 0)]  # the newest word only


def test_collapse_after_downtime_sends_the_latest_word_to_each_tier():
    steps = due_steps(IncidentState(1, False), [five_hour_clock()], POLICY, T0 + 11 * H)
    send, superseded = collapse(steps)
    assert [s.label for s in send] == ["overdue-0", "overdue-3"]  # tier 1 once, tier 2 once
    # overdue-1 and -2 (tier 2, missed) are not even steps any more: no row per missed repeat.
    assert {s.label for s in superseded} == {"remind-50%", "remind-1h-before"}
    # Before the deadline, only the latest reminder goes out.
    send, superseded = collapse(due_steps(IncidentState(1, False), [five_hour_clock()], POLICY, T0 + 4.5 * H))
    assert [s.label for s in send] == ["remind-1h-before"] and [s.label for s in superseded] == ["remind-50%"]
    # One step at a time (the daemon on time) collapses nothing.
    one = due_steps(IncidentState(1, False), [five_hour_clock()], POLICY, T0 + 3 * H)
    assert collapse(one) == (one, [])
