"""Detection officers can trust: repost chains, new waves after an answer, merges that keep
the record. Real SQLite, the real pipeline, alerts through apprise to a local receiver."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

from sqlalchemy import select

from monitor.alerts.outbox import deliver_due
from monitor.app import build
from monitor.clock import FakeClock
from monitor.config import load
from monitor.incidents.cluster import Clusterer, features
from monitor.sources import RawPost
from monitor.store.models import Incident, IncidentPost, Notification, Post, ResponseClock
from monitor.store.posts import source_row, store_posts

from .conftest import utc, write_config

T0 = utc(2026, 11, 20, 2, 0)
H = timedelta(hours=1)


class World:
    def __init__(self, tmp_path, receiver, extra=""):
        self.path = write_config(tmp_path / "cfg", receiver_url=receiver.url("/hook"), extra=extra)
        self.cfg = load(self.path)
        self.clock = FakeClock(T0)
        self.app = build(self.cfg, self.clock)
        with self.app.sessions.begin() as s:
            self.source_id = source_row(s, "微博", "http://127.0.0.1/weibo").id

    def post(self, ident, title, repost_of=None, at=None):
        raw = RawPost(ident, f"http://127.0.0.1/p/{ident}", title, "", "网友", at or self.clock.now(), repost_of=repost_of)
        with self.app.sessions.begin() as s:
            store_posts(s, self.source_id, [raw], self.clock.now())
        self.app.pipeline.process_pending()
        self.app.pipeline.tick()

    def incidents(self):
        with self.app.sessions() as s:
            return s.scalars(select(Incident).order_by(Incident.id)).all()

    def members(self, incident_id):
        with self.app.sessions() as s:
            return sorted(s.scalars(select(Post.external_id).join(IncidentPost, IncidentPost.post_id == Post.id)
                                    .where(IncidentPost.incident_id == incident_id)))

    def kinds(self):
        with self.app.sessions() as s:
            return [n.kind for n in s.scalars(select(Notification).order_by(Notification.id))]


def test_a_repost_chain_through_a_non_matching_repost_is_one_incident_and_one_alert(tmp_path, receiver):
    w = World(tmp_path, receiver, extra='[incidents]\nclustering = "event"\n')
    w.post("o1", "开发区化工厂发生爆炸，浓烟滚滚")
    w.post("r2", "转发微博", repost_of="o1")  # matches no rule: joins through its link
    w.post("r3", "太吓人了，又爆炸了", repost_of="r2")  # matches, and reposts r2
    (incident,) = w.incidents()
    assert w.members(incident.id) == ["o1", "r2", "r3"]
    assert w.kinds().count("opened") == 1


def test_a_post_joining_an_answered_incident_tells_the_duty_tier(tmp_path, receiver):
    w = World(tmp_path, receiver)
    w.post("a", "城东河道黑臭")
    (incident,) = w.incidents()
    with w.app.sessions.begin() as s:
        w.app.incidents.actions.met(s, incident.id, "权威回应", "值班员", T0 + H, "https://example.gov.cn/reply")
    w.clock.set(T0 + 2 * H)
    w.post("b", "城东河道又黑臭了，整治没效果")
    w.post("c", "城东河道还是黑臭")  # the same wave, the same hour: one alert, not two
    assert w.kinds() == ["opened", "progress"]
    deliver_due(w.app.sessions, w.app.channels, w.clock, w.cfg.main.alerts)
    assert any("事件有新进展" in t for t in receiver.titles())
    body = next(p["payload"]["message"] for p in receiver.posts if "事件有新进展" in p["payload"]["title"])
    assert "城东河道又黑臭了" in body and "请研判是否需要再次回应" in body
    with w.app.sessions() as s:
        assert [c.name for c in s.scalars(select(ResponseClock))] == ["权威回应"]  # alert only: no new clock


def test_reopen_starts_the_answered_clocks_again_for_the_new_wave(tmp_path, receiver):
    w = World(tmp_path, receiver, extra='[incidents]\nnew_wave = "reopen"\n')
    w.post("a", "城东河道黑臭")
    (incident,) = w.incidents()
    with w.app.sessions.begin() as s:
        w.app.incidents.actions.met(s, incident.id, "权威回应", "值班员", T0 + H, None)
    w.clock.set(T0 + 2 * H)
    w.post("b", "城东河道又黑臭了")
    with w.app.sessions() as s:
        clocks = {c.name: (c.started_at, c.due_at, c.met_at) for c in s.scalars(select(ResponseClock))}
    assert clocks["权威回应（第2轮）"] == (T0 + 2 * H, T0 + 50 * H, None)
    assert w.kinds() == ["opened", "progress"]
    w.post("c", "城东河道仍然黑臭")  # the new round is open: nothing more to tell
    assert w.kinds() == ["opened", "progress"]


def test_merge_keeps_the_acknowledgement_and_met_clocks_and_says_where_it_went(tmp_path, receiver):
    w = World(tmp_path, receiver)
    w.post("a", "城东河道黑臭")
    w.clock.set(T0 + 30 * H)
    w.post("b", "城东河道黑臭，整治没效果")  # outside the 24 h window: a second incident
    first, second = w.incidents()
    with w.app.sessions.begin() as s:
        w.app.incidents.actions.ack(s, second.id, "李四", T0 + 30.2 * H)
        w.app.incidents.actions.met(s, second.id, "权威回应", "李四", T0 + 31 * H, "https://example.gov.cn/a")
    with w.app.sessions.begin() as s:
        w.app.incidents.actions.merge(s, first.id, second.id, "科长", T0 + 32 * H)
    kept, merged = w.incidents()
    assert kept.acked_by == "李四" and kept.state == "acknowledged"
    (clock,) = kept.clocks
    assert clock.evidence == "https://example.gov.cn/a" and clock.met_at == T0 + 31 * H
    assert merged.state == "closed" and merged.merged_into == kept.id
    # Nothing escalates any more: the kept incident's clock stands met.
    w.clock.set(T0 + 60 * H)
    w.app.pipeline.tick()
    assert [k for k in w.kinds() if k == "escalation"] == []
    shown = subprocess.run([sys.executable, "-m", "monitor", "incidents", "show", str(merged.id), "--config", str(w.path)],
                           capture_output=True, text=True, timeout=60)
    assert f"已并入 #{kept.id}" in shown.stdout
    shown = subprocess.run([sys.executable, "-m", "monitor", "incidents", "show", str(kept.id), "--config", str(w.path)],
                           capture_output=True, text=True, timeout=60)
    with w.app.sessions() as s:
        ids = s.scalars(select(Post.id).order_by(Post.id)).all()
    assert all(f"#{i}【微博】" in shown.stdout for i in ids), shown.stdout  # post ids, as split takes them


PLACES = ["鼓楼区", "台江区", "仓山区", "晋安区", "马尾区", "长乐区", "闽侯县", "连江县", "罗源县", "闽清县", "永泰县", "平潭县"]
THINGS = ["化工厂", "加油站", "烟花仓库", "燃气站", "锅炉房", "餐馆", "冷库", "印染厂", "木材厂", "塑料厂", "变电站", "码头"]


def test_past_the_budget_new_incidents_fold_into_one_digest_at_the_end_of_the_hour(tmp_path, receiver):
    w = World(tmp_path, receiver, extra='[incidents]\nclustering = "event"\n[alerts]\nnew_incidents_per_hour = 3\nstorm_threshold = 0\n')
    for i, (place, thing) in enumerate(zip(PLACES[:6], THINGS[:6])):
        w.clock.set(T0 + timedelta(minutes=i))
        w.post(f"p{i}", f"{place}{thing}发生爆炸")
    assert len(w.incidents()) == 6  # six different events
    with w.app.sessions() as s:
        held = [n.held_until for n in s.scalars(select(Notification).where(Notification.kind == "opened").order_by(Notification.id))]
    assert held[:3] == [None, None, None] and all(h is not None for h in held[3:])
    deliver_due(w.app.sessions, w.app.channels, w.clock, w.cfg.main.alerts)
    assert len(receiver.posts) == 3  # within the budget: each on its own
    w.clock.set(T0 + H)  # the end of the hour
    deliver_due(w.app.sessions, w.app.channels, w.clock, w.cfg.main.alerts)
    assert len(receiver.posts) == 4
    digest = receiver.posts[-1]["payload"]
    assert digest["title"].startswith("【新舆情事件汇总】3 起新事件")
    assert all(f"新舆情事件 #{n}" in digest["message"] for n in (4, 5, 6))


def test_the_budget_never_holds_back_a_特别重大_incident(tmp_path, receiver):
    rules = '[[rule]]\nname = "地震"\nterms = ["地震"]\nseverity = "特别重大"\n'
    path = write_config(tmp_path / "cfg", receiver_url=receiver.url("/hook"), watchwords=rules,
                        extra='[incidents]\nclustering = "event"\n[alerts]\nnew_incidents_per_hour = 1\n')
    cfg = load(path)
    app = build(cfg, FakeClock(T0))
    with app.sessions.begin() as s:
        src = source_row(s, "微博", "http://127.0.0.1/w").id
        store_posts(s, src, [RawPost(f"q{i}", None, f"{p}发生{m}级地震", "", None, T0) for i, (p, m) in
                             enumerate([("四川芦山", 7), ("青海玉树", 6), ("云南鲁甸", 6)])], T0)
    app.pipeline.process_pending()
    with app.sessions() as s:
        opened = s.scalars(select(Notification).where(Notification.kind == "opened")).all()
    assert len(opened) == 3 and all(n.held_until is None for n in opened)


def test_a_post_about_another_site_opens_its_own_event_however_many_words_it_shares():
    # a low threshold, so that only the people/places/organisations check keeps them apart
    c = Clusterer(timedelta(hours=24), threshold=0.5, named_threshold=0.5, near_dup=None)
    first = c.add("a", T0, "鼓楼区化工厂发生爆炸，现场浓烟滚滚，消防车赶到")
    other = c.add("b", T0 + timedelta(minutes=5), "仓山区化工厂发生爆炸，现场浓烟滚滚，消防车赶到")
    same = c.add("c", T0 + timedelta(minutes=9), "鼓楼区化工厂爆炸现场浓烟滚滚")
    assert other != first and same == first
    assert c.add("d", T0 + timedelta(minutes=12), "化工厂爆炸现场浓烟滚滚，消防车赶到") in (first, other)  # names no site


def test_two_complaints_about_one_site_in_other_words_are_one_event():
    c = Clusterer(timedelta(hours=24))  # the defaults
    a = c.add("a1", T0, "光明港公园内河黑臭，光明港附近居民投诉")
    b = c.add("b1", T0, "白马河沿岸污水直排，白马河水质恶化发黑发臭")
    assert c.add("a2", T0 + H, "光明港公园内河依旧黑臭，光明港附近商户反映") == a != b


def test_a_comment_that_fits_two_events_joins_the_one_in_full_burst():
    c = Clusterer(timedelta(hours=24), near_dup=None)
    quake = features("芦山地震")
    c.remember("old", T0, quake, key=1)
    for i in range(3):
        c.remember(f"hot{i}", T0 + timedelta(minutes=50 + i), quake, key=2)
    assert c.find(T0 + H, features("芦山地震了")) == 2  # three posts in the last hour against none
    assert c.find(T0 + 3 * H, features("芦山地震了")) == 1  # the burst is over: the older event


def test_repeats_to_the_top_tier_wait_for_the_hourly_digest_and_an_answer_cancels_them(tmp_path, receiver):
    w = World(tmp_path, receiver, extra='[alerts]\nstorm_threshold = 0\n')
    w.post("p1", "鼓楼区化工厂发生爆炸")
    [incident] = w.incidents()
    for hours in (5, 7, 9):  # due 5 h, 科室负责人; +2 h 分管领导 (the top); +4 h the first repeat
        w.clock.set(T0 + hours * H)
        w.app.pipeline.tick()
    with w.app.sessions() as s:
        held = {n.key.split(":")[-1]: n.held_until for n in s.scalars(select(Notification).where(Notification.kind == "escalation"))}
    assert held["overdue-0"] is None and held["overdue-1"] is None and held["overdue-2"] == T0 + 10 * H
    deliver_due(w.app.sessions, w.app.channels, w.clock, w.cfg.main.alerts)
    before = len(receiver.posts)
    assert not any("汇总" in p["payload"]["title"] for p in receiver.posts)
    w.clock.set(T0 + 10 * H)
    deliver_due(w.app.sessions, w.app.channels, w.clock, w.cfg.main.alerts)
    assert len(receiver.posts) == before + 1
    assert receiver.posts[-1]["payload"]["title"].startswith("【提醒与升级汇总】1 条时限提醒与升级")
    message = receiver.posts[-1]["payload"]["message"]
    assert f"#{incident.id}" in message and "（发布权威信息：" in message and "截止，已超时 5小时" in message  # clock, time left
    w.clock.set(T0 + 11 * H)  # the next repeat is held for 12:00, and then the clock is met
    w.app.pipeline.tick()
    with w.app.sessions.begin() as s:
        w.app.incidents.actions.met(s, incident.id, "发布权威信息", "值班员甲", w.clock.now(), "https://gov/x")
    w.clock.set(T0 + 12 * H)
    deliver_due(w.app.sessions, w.app.channels, w.clock, w.cfg.main.alerts)
    assert len(receiver.posts) == before + 1  # answered: the held repeat is not sent


def test_steps_of_one_rule_to_one_tier_close_together_go_as_one_digest_at_the_next_quarter(tmp_path, receiver):
    w = World(tmp_path, receiver, extra='[incidents]\nclustering = "event"\n[alerts]\nstorm_threshold = 0\n')
    w.post("p1", "鼓楼区化工厂发生爆炸")
    w.clock.set(T0 + timedelta(minutes=5))
    w.post("p2", "仓山区加油站发生爆炸")
    assert len(w.incidents()) == 2
    deliver_due(w.app.sessions, w.app.channels, w.clock, w.cfg.main.alerts)
    opened = len(receiver.posts)  # the two 新舆情事件, each on its own
    w.clock.set(T0 + timedelta(hours=2, minutes=30))  # half of #1's 5 h: the first reminder of the rule
    w.app.pipeline.tick()
    deliver_due(w.app.sessions, w.app.channels, w.clock, w.cfg.main.alerts)
    assert len(receiver.posts) == opened + 1 and "#1" in receiver.posts[-1]["payload"]["title"]
    w.clock.set(T0 + timedelta(hours=2, minutes=35))  # #2's reminder, 5 minutes later: waits for 04:45
    w.app.pipeline.tick()
    deliver_due(w.app.sessions, w.app.channels, w.clock, w.cfg.main.alerts)
    assert len(receiver.posts) == opened + 1
    w.clock.set(T0 + timedelta(hours=2, minutes=45))
    deliver_due(w.app.sessions, w.app.channels, w.clock, w.cfg.main.alerts)
    assert len(receiver.posts) == opened + 2
    digest = receiver.posts[-1]["payload"]
    assert digest["title"].startswith("【提醒与升级汇总】1 条") and "#2" in digest["message"]


def test_another_story_of_an_open_event_is_its_own_incident_whose_alerts_go_in_the_quarter_digest(tmp_path, receiver):
    rules = '[[rule]]\nname = "地震"\nterms = ["地震"]\nseverity = "特别重大"\n'
    path = write_config(tmp_path / "cfg", receiver_url=receiver.url("/hook"), watchwords=rules,
                        extra='[incidents]\nclustering = "event"\n[alerts]\nstorm_threshold = 0\n')
    cfg = load(path)
    clock = FakeClock(T0 + timedelta(minutes=1))
    app = build(cfg, clock)
    with app.sessions.begin() as s:
        src = source_row(s, "微博", "http://127.0.0.1/w").id
    texts = [("q1", "四川芦山县发生7级地震，芦山县城房屋受损，伤亡不明"),
             ("q2", "芦山地震：一只大熊猫紧紧抱住救援民警的腿不放，芦山县网友拍下这一幕"),  # another story, same place
             ("q3", "云南鲁甸县发生6级地震，鲁甸县城有房屋倒塌")]  # another place: a new event
    for ident, text in texts:
        with app.sessions.begin() as s:
            store_posts(s, src, [RawPost(ident, None, text, "", None, clock.now())], clock.now())
        app.pipeline.process_pending()
    with app.sessions() as s:
        incidents = s.scalars(select(Incident).order_by(Incident.id)).all()
        assert [(i.id, i.related_to) for i in incidents] == [(1, None), (2, 1), (3, None)]
        held = {n.incident_id: n.held_until for n in s.scalars(select(Notification).where(Notification.kind == "opened"))}
    assert held[1] is None and held[3] is None  # each new event pages at once, 特别重大 as it is
    assert held[2] == T0 + timedelta(minutes=15)  # the next quarter hour
    deliver_due(app.sessions, app.channels, clock, cfg.main.alerts)
    assert sorted(p["payload"]["title"][:20] for p in receiver.posts) == sorted(["【特别重大】新舆情事件 #1：地震", "【特别重大】新舆情事件 #3：地震"])
    clock.set(T0 + timedelta(minutes=15))
    deliver_due(app.sessions, app.channels, clock, cfg.main.alerts)
    assert receiver.posts[-1]["payload"]["title"].startswith("【新舆情事件汇总】1 起新事件")
    assert "#2" in receiver.posts[-1]["payload"]["message"]


def test_where_reposts_are_linked_another_authors_own_post_is_its_own_chain_and_a_copy_joins(tmp_path, receiver):
    rules = '[[rule]]\nname = "地震"\nterms = ["地震"]\nseverity = "特别重大"\n'
    path = write_config(tmp_path / "cfg", receiver_url=receiver.url("/hook"), watchwords=rules,
                        extra='[incidents]\nclustering = "event"\n[alerts]\nstorm_threshold = 0\n')
    clock = FakeClock(T0 + timedelta(minutes=1))
    app = build(load(path), clock)
    with app.sessions.begin() as s:
        weibo = source_row(s, "微博", "http://127.0.0.1/w").id
        board = source_row(s, "12345", "http://127.0.0.1/b").id  # says nothing of reposts

    def post(source, ident, text, repost_of=None):
        with app.sessions.begin() as s:
            store_posts(s, source, [RawPost(ident, None, text, "", None, clock.now(), repost_of=repost_of)], clock.now())
        app.pipeline.process_pending()

    first = "四川芦山县发生7级地震，芦山县城房屋受损，伤亡情况不明，请大家关注"
    post(weibo, "q1", first)
    post(weibo, "r1", "芦山挺住，地震无情人有情", repost_of="q1")
    post(board, "b1", "芦山县城地震，房屋受损，伤亡情况不明")  # a source without links: joins by its words
    post(weibo, "q2", "芦山县7级地震，芦山县城房屋受损严重，伤亡情况不明")  # another author's own post
    post(weibo, "r2", "转发：地震了", repost_of="q2")
    post(weibo, "q3", first + " 转发")  # the same text copied: the same chain of the event
    with app.sessions() as s:
        incidents = s.scalars(select(Incident).order_by(Incident.id)).all()
        assert [(i.id, i.related_to) for i in incidents] == [(1, None), (2, 1)]
        members = {i.id: sorted(s.scalars(select(Post.external_id).join(IncidentPost, IncidentPost.post_id == Post.id)
                                          .where(IncidentPost.incident_id == i.id))) for i in incidents}
        held = {n.incident_id: n.held_until for n in s.scalars(select(Notification).where(Notification.kind == "opened"))}
    assert members == {1: ["b1", "q1", "q3", "r1"], 2: ["q2", "r2"]}
    assert held[1] is None and held[2] == T0 + timedelta(minutes=15)  # another story: the quarter's digest


def test_in_event_mode_a_post_matching_two_rules_is_one_incident_of_the_more_severe_rule(tmp_path, receiver, capsys):
    w = World(tmp_path, receiver, extra='[incidents]\nclustering = "event"\n')
    w.post("a1", "凤坂河边化工厂爆炸后河水发黑发臭")  # 危化品爆炸 (重大) and 黑臭水体 (一般)
    w.post("a2", "化工厂爆炸了，凤坂河的河水发黑发臭")  # the same event in other words, again both rules
    (incident,) = w.incidents()
    assert incident.rule == "危化品爆炸" and w.members(incident.id) == ["a1", "a2"]
    assert w.kinds().count("opened") == 1
    with w.app.sessions() as s:  # both rules' matches stay in the record
        from monitor.store.models import Match
        assert sorted(m.rule for m in s.scalars(select(Match).join(Post, Post.id == Match.post_id)
                                                    .where(Post.external_id == "a1"))) == ["危化品爆炸", "黑臭水体"]
    from monitor.cli import main

    capsys.readouterr()
    assert main(["incidents", "show", str(incident.id), "--config", str(w.path)]) == 0
    assert capsys.readouterr().out.count("也命中规则：黑臭水体") == 2


def test_in_rule_mode_a_post_matching_two_rules_is_in_each_rules_incident(tmp_path, receiver):
    w = World(tmp_path, receiver)
    w.post("a1", "凤坂河边化工厂爆炸后河水发黑发臭")
    assert sorted(i.rule for i in w.incidents()) == ["危化品爆炸", "黑臭水体"]


def test_instances_on_one_postgresql_see_each_others_events(tmp_path, receiver, pg_url):
    extra = '[incidents]\nclustering = "event"\n'
    apps = []
    for name in ("a", "b"):
        path = write_config(tmp_path / name, receiver_url=receiver.url("/hook"), extra=extra, database_url=pg_url)
        apps.append(build(load(path), FakeClock(T0)))
    a, b = apps
    with a.sessions.begin() as s:
        src = source_row(s, "微博", "http://127.0.0.1/w").id

    def post(app, ident, text):
        with app.sessions.begin() as s:
            store_posts(s, src, [RawPost(ident, None, text, "", None, T0)], T0)
        app.pipeline.process_pending()

    post(b, "p0", "仓山区化工厂发生爆炸，现场浓烟滚滚")  # b's index of the rule is built here
    post(a, "p1", "鼓楼区化工厂发生爆炸，现场浓烟滚滚，消防车赶到")  # another site: a opens its own incident
    post(b, "p2", "鼓楼区化工厂爆炸现场浓烟滚滚，消防车正在灭火")  # b must know a's incident to join it
    with a.sessions() as s:
        rows = s.execute(select(Post.external_id, IncidentPost.incident_id)
                         .join(IncidentPost, IncidentPost.post_id == Post.id).order_by(Post.external_id)).all()
    assert [(p, i) for p, i in rows] == [("p0", 1), ("p1", 2), ("p2", 2)]
    for app in apps:
        app.engine.dispose()
