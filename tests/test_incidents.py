"""Incidents in a real SQLite file, alerts through apprise to a real local receiver."""

import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from monitor.alerts.outbox import deliver_due
from monitor.app import build
from monitor.clock import FakeClock
from monitor.incidents.service import ActionError
from monitor.sources import RawPost
from monitor.store.models import DeliveryAttempt, Event, Incident, Notification, Outbox
from monitor.store.posts import source_row, store_posts

from .conftest import utc

T0 = utc(2026, 11, 20, 0, 0)
H = timedelta(hours=1)


class World:
    def __init__(self, cfg, receiver):
        self.clock = FakeClock(T0)
        self.receiver = receiver
        self.app = build(cfg, self.clock)
        with self.app.sessions.begin() as s:
            self.source_id = source_row(s, "test", "http://127.0.0.1/feed").id
        self.n = 0

    def post(self, title, body="", published=None, url=None):
        self.n += 1
        raw = RawPost(f"p{self.n}", url or f"http://example/p{self.n}", title, body, None, published or self.clock.now())
        with self.app.sessions.begin() as s:
            store_posts(s, self.source_id, [raw], self.clock.now())
        self.app.pipeline.process_pending()
        return raw.external_id

    def at(self, delta):
        self.clock.set(T0 + delta)
        self.app.pipeline.tick()
        return deliver_due(self.app.sessions, self.app.channels, self.clock, self.app.cfg.main.alerts)

    def session(self):
        return self.app.sessions.begin()

    def incidents(self):
        with self.app.sessions() as s:
            return s.scalars(select(Incident).order_by(Incident.id)).all()


@pytest.fixture
def world(make_config, receiver):
    w = World(make_config(receiver_url=receiver.url("/hook")), receiver)
    yield w
    w.app.engine.dispose()


def test_post_opens_incident_with_clocks_and_alert_arrives(world):
    world.post("开发区化工厂发生爆炸", "浓烟滚滚", url="http://news/1")
    [inc] = world.incidents()
    assert (inc.rule, inc.severity, inc.department, inc.state) == ("危化品爆炸", "重大", "应急管理局", "open")
    assert [(c.name, c.due_at - T0) for c in inc.clocks] == [("发布权威信息", 5 * H), ("召开新闻发布会", 24 * H)]
    assert world.at(timedelta(0)) == 1
    [payload] = [p["payload"] for p in world.receiver.posts]
    assert payload["title"] == "【重大】新舆情事件 #1：危化品爆炸"
    body = payload["message"]
    for expected in ("命中词：爆炸", "http://news/1", "发布权威信息：2026-11-20 13:00 截止，剩余 5小时", "召开新闻发布会：2026-11-21 08:00 截止", "应急管理局"):
        assert expected in body


def test_posts_join_within_window_and_open_new_after(world):
    world.post("化工厂爆炸")
    world.clock.set(T0 + 2 * H)
    world.post("爆燃现场已疏散")
    world.clock.set(T0 + 40 * H)
    world.post("另一起爆炸")
    a, b = world.incidents()
    assert (a.post_count, b.post_count) == (2, 1)
    assert a.terms == ["爆炸", "爆燃"]


def test_non_matching_and_cross_word_posts_open_nothing(world):
    world.post("南京市长江大桥风景")
    world.post("今天天气不错")
    assert world.incidents() == []


def test_old_posts_on_first_poll_do_not_page_anyone(world):
    world.post("十天前的爆炸新闻", published=T0 - 240 * H)
    assert world.incidents() == []


def test_reminders_and_escalation_fire_once_each(world):
    world.post("化工厂爆炸")
    sent = [world.at(d) for d in (0 * H, 2.5 * H, 2.5 * H, 4 * H, 5 * H, 5 * H)]
    assert sent == [1, 1, 0, 1, 1, 0]
    titles = world.receiver.titles()
    assert titles[1].endswith("发布权威信息剩余 2小时30分")
    assert titles[3].endswith("发布权威信息已到截止时间")
    with world.app.sessions() as s:
        assert s.scalar(select(Notification.tags).where(Notification.key == "1:发布权威信息:overdue-0")) == ["lead"]


def test_met_stops_that_clock_only(world):
    world.post("化工厂爆炸")
    with world.session() as s:
        world.app.incidents.actions.met(s, 1, "发布权威信息", "张三", T0 + H, "http://gov/notice")
    world.at(30 * H)
    with world.app.sessions() as s:
        keys = s.scalars(select(Notification.key).where(Notification.disposition == "sent")).all()
        event = s.scalars(select(Event).where(Event.kind == "clock_met")).one()
    assert not any("发布权威信息" in k for k in keys)
    assert any(k.startswith("1:召开新闻发布会:overdue") for k in keys)
    assert (event.actor, event.data["on_time"], event.data["evidence"]) == ("张三", True, "http://gov/notice")


def test_close_stops_everything_and_actions_are_events(world):
    world.post("化工厂爆炸")
    with world.session() as s:
        world.app.incidents.actions.ack(s, 1, "李四", T0 + 0.1 * H)
        world.app.incidents.actions.close(s, 1, "李四", T0 + 0.2 * H)
    assert world.at(50 * H) == 1  # only the opening alert
    with world.app.sessions() as s:
        kinds = s.scalars(select(Event.kind).order_by(Event.id)).all()
    assert kinds == ["opened", "acknowledged", "closed"]
    with world.session() as s, pytest.raises(ActionError, match="已关闭"):
        world.app.incidents.actions.close(s, 1, "李四", T0 + H)


def test_regrade_recomputes_clocks(world):
    world.post("河道黑臭")
    [inc] = world.incidents()
    assert [c.name for c in inc.clocks] == ["权威回应"]
    with world.session() as s:
        world.app.incidents.actions.regrade(s, 1, "重大", "王五", T0 + 6 * H)
    world.at(6 * H)
    [inc] = world.incidents()
    active = {c.name: c.due_at - T0 for c in inc.clocks if c.active}
    assert active == {"发布权威信息": 5 * H, "召开新闻发布会": 24 * H}
    assert inc.severity == "重大"
    # Already overdue at the regrade: tier 1 hears it at once; stale reminders are superseded.
    with world.app.sessions() as s:
        rows = {n.key: n.disposition for n in s.scalars(select(Notification))}
    assert rows["1:发布权威信息:overdue-0"] == "sent"
    assert rows["1:发布权威信息:remind-50%"] == "superseded"
    with world.session() as s, pytest.raises(ActionError, match="级别"):
        world.app.incidents.actions.regrade(s, 1, "超级", "王五", T0 + 6 * H)


def test_failing_channel_is_retried_and_delivered_once(world):
    world.receiver.fail_posts = 2
    world.post("化工厂爆炸")
    assert world.at(timedelta(0)) == 0
    assert world.at(timedelta(seconds=5)) == 0  # not due yet: back-off
    assert world.at(timedelta(seconds=10)) == 0  # second failure
    assert world.at(timedelta(seconds=30)) == 1
    assert world.at(timedelta(seconds=90)) == 0
    assert len(world.receiver.posts) == 1
    with world.app.sessions() as s:
        attempts = s.scalars(select(DeliveryAttempt.ok).order_by(DeliveryAttempt.id)).all()
        row = s.scalars(select(Outbox)).one()
    assert attempts == [False, False, True]
    assert (row.state, row.attempts) == ("sent", 3)
    assert "json://127.0.0.1" in row.target_display


def test_channel_down_for_a_day_is_given_up_and_recorded(world):
    world.receiver.fail_posts = 10_000
    world.post("化工厂爆炸")
    for minutes in range(0, 25 * 60, 30):
        world.at(timedelta(minutes=minutes))
    with world.app.sessions() as s:
        opened = s.scalars(select(Outbox).join(Notification).where(Notification.key == "1:opened")).one()
        tried = s.scalar(select(func.count(DeliveryAttempt.id)).where(DeliveryAttempt.outbox_id == opened.id))
    assert opened.state == "failed" and tried == opened.attempts > 5
    assert "500" in opened.last_error


def test_tokens_never_reach_logs(make_config, receiver, capsys):
    cfg = make_config(receiver_url=receiver.url("/hook"))
    secret = "Sup3rSecr3tT0ken"
    (cfg.apprise_path).write_text(
        "version: 1\nurls:\n"
        f"  - json://bot:{secret}@127.0.0.1:9/hook:\n      tag: duty, lead, leader\n",
        encoding="utf-8",
    )
    from monitor.app import setup_logging

    setup_logging("DEBUG")
    w = World(cfg, receiver)
    w.post("化工厂爆炸")
    w.at(timedelta(0))
    logging.getLogger("test").error("failed to reach json://bot:%s@127.0.0.1:9/hook", secret)
    logs = capsys.readouterr().err
    assert "告警投递失败" in logs and "json://bot:***@127.0.0.1:9/hook" in logs
    assert secret not in logs
    with w.app.sessions() as s:
        assert secret not in " ".join(s.scalars(select(Outbox.target_display)).all())
        assert secret not in " ".join(s.scalars(select(Outbox.last_error)).all() or [""])
    w.app.engine.dispose()


def test_earlier_post_found_later_moves_the_clocks_back(world):
    world.clock.set(T0 + 2 * H)
    world.post("化工厂爆炸", published=T0 + 2 * H)
    world.post("一小时前就有人说化工厂爆燃", published=T0 + H)
    [inc] = world.incidents()
    assert inc.started_at == T0 + H
    assert {c.name: c.due_at - T0 for c in inc.clocks} == {"发布权威信息": 6 * H, "召开新闻发布会": 25 * H}
    with world.app.sessions() as s:
        assert "start_moved" in s.scalars(select(Event.kind)).all()


def test_a_repost_joins_its_original_even_without_a_term(world):
    original = world.post("化工厂爆炸")
    raw = RawPost("r1", None, "", "[蜡烛][蜡烛]", None, world.clock.now(), repost_of=original)
    with world.session() as s:
        store_posts(s, world.source_id, [raw], world.clock.now())
    world.app.pipeline.process_pending()
    [inc] = world.incidents()
    assert inc.post_count == 2
    with world.app.sessions() as s:
        event = s.scalars(select(Event).where(Event.kind == "post_added")).one()
    assert event.data["via"] == "repost"


def test_merge_and_split_are_events_and_move_clocks(world):
    world.post("河道黑臭", published=T0)
    world.clock.set(T0 + 30 * H)
    world.post("另一条河也黑臭", published=T0 + 30 * H)  # outside the window: a second incident
    a, b = world.incidents()
    with world.session() as s:
        world.app.incidents.actions.merge(s, b.id, a.id, "科长", T0 + 31 * H)
    a, b = world.incidents()
    assert a.state == "closed" and b.post_count == 2
    assert b.started_at == T0  # the clocks count from the earlier report now
    assert {c.name: c.due_at for c in b.clocks} == {"权威回应": T0 + 48 * H}
    with world.session() as s:
        new = world.app.incidents.actions.split(s, b.id, ["p1"], "科长", T0 + 32 * H)
        new_id = new.id
    with world.app.sessions() as s:
        kinds = s.scalars(select(Event.kind).order_by(Event.id)).all()
        moved = s.get(Incident, new_id)
        assert moved.post_count == 1 and moved.started_at == T0
        kept = s.get(Incident, b.id)
        # The source is recomputed from the post that stayed: title, start and its clock.
        assert kept.title == "另一条河也黑臭" and kept.started_at == T0 + 30 * H
        assert {c.name: c.due_at for c in kept.clocks} == {"权威回应": T0 + 78 * H}
    assert kinds[-5:] == ["merged", "merged_into", "start_moved", "split_out", "split_from"]
    with world.session() as s, pytest.raises(ActionError, match="没有帖文"):
        world.app.incidents.actions.split(s, b.id, ["nope"], "科长", T0 + 33 * H)
    with world.session() as s, pytest.raises(ActionError, match="不能把全部帖文拆出"):
        world.app.incidents.actions.split(s, new_id, ["p1"], "科长", T0 + 33 * H)


def heat_world(make_config, receiver, action):
    extra = f'[[heat]]\nraise_to = "较大"\nposts_per_hour = 5\nauthors = 3\naction = "{action}"\n'
    w = World(make_config(receiver_url=receiver.url("/hook"), extra=extra), receiver)
    for i in range(6):
        w.clock.set(T0 + timedelta(minutes=5 * i))
        raw = RawPost(f"h{i}", None, f"河道黑臭第{i}帖", "", f"网友{i % 4}", w.clock.now())
        with w.app.sessions.begin() as s:
            store_posts(s, w.source_id, [raw], w.clock.now())
        w.app.pipeline.process_pending()
    return w


def test_heat_raises_the_severity_with_its_reason(make_config, receiver):
    w = heat_world(make_config, receiver, "raise")
    [inc] = w.incidents()
    assert inc.severity == "较大"
    with w.app.sessions() as s:
        heat = s.scalars(select(Event).where(Event.kind == "heat")).one()
        regraded = s.scalars(select(Event).where(Event.kind == "regraded")).one()
    assert heat.data["raised_to"] == "较大" and "近 1 小时 5 条" in heat.data["reason"] and "作者 4 人" in heat.data["reason"]
    assert regraded.actor == "system:热度" and regraded.data["before"] == "一般"
    w.app.engine.dispose()


def test_heat_suggests_once(make_config, receiver, capsys):
    from monitor.cli import main

    w = heat_world(make_config, receiver, "suggest")
    [inc] = w.incidents()
    assert inc.severity == "一般"
    with w.app.sessions() as s:
        notes = s.scalars(select(Notification.title).where(Notification.kind == "suggest")).all()
    assert notes == ["【一般】事件 #1 热度上升，建议调整为「较大」"]
    w.clock.set(T0 + timedelta(minutes=40))
    assert main(["incidents", "show", "1", "--config", str(w.app.cfg.path)]) == 0
    out = capsys.readouterr().out
    assert "热度：近 1 小时" in out and "热度曲线" in out and "|" in out
    w.app.engine.dispose()


def test_heat_curve():
    from monitor.incidents.heat import curve, measure

    times = [T0 + timedelta(minutes=m) for m in (0, 1, 2, 30, 31, 90)]
    bars, width = curve(times, T0, T0 + 2 * H, buckets=4)
    assert width == timedelta(minutes=30) and bars == "█▆ ▃"  # 3, 2, 0, 1 posts per half hour
    heat = measure([(t, "s", "a") for t in times], T0 + 2 * H)
    assert (heat.last_hour, heat.growth) == (1, 1 / 4)  # 90 min vs (0, 60] min: 1, 2, 30, 31
