"""The office's own channels: a notice on its website feed never opens an incident; when it
matches an open incident (same rule, a shared place or organisation, published after the
incident began) it is proposed as that incident's answer, confirmed with one tap, or meets
the clock by itself where configured."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from monitor.app import build
from monitor.cli import main
from monitor.clock import FakeClock, parse_iso
from monitor.config import HttpConfig, load
from monitor.sources.http import make_client
from monitor.sources.poll import Poller
from monitor.store.models import Event, Incident, Notification, ResponseClock

from .conftest import Route, rss, write_config
from .console_world import ConsoleWorld, csrf

NOW = parse_iso("2026-11-20T10:00:00+08:00")


def official_source(url: str, extra: str = "") -> str:
    return (f'[[source]]\nname = "区政府网站"\nurl = "{url}"\ninterval = "1m"\njitter = 0\nofficial = true\n'
            f'department = "生态环境局"\n{extra}')


@pytest.fixture
def town(tmp_path, server, receiver):
    """A citizens' feed and the district government's own news feed, both real local HTTP."""
    def make(extra: str = ""):
        server.routes["/citizens"] = Route(rss([
            {"id": "c1", "title": "滨江区凤坂河发黑发臭，气味难闻", "published": NOW - timedelta(hours=3)},
            {"id": "c2", "title": "滨江区化工厂爆炸，浓烟很大", "published": NOW - timedelta(hours=2)},
        ]))
        server.routes["/gov"] = Route(rss([
            {"id": "g1", "title": "关于滨江区凤坂河黑臭水体整治情况的通报", "link": "https://gov.example/notice/1",
             "published": NOW - timedelta(hours=1)},
            {"id": "g2", "title": "关于西湖区龙泉湖黑臭水体整治的通报", "link": "https://gov.example/notice/2",
             "published": NOW - timedelta(minutes=50)},
            {"id": "g3", "title": "滨江区召开化工厂爆炸事故新闻发布会", "link": "https://gov.example/press/3",
             "published": NOW - timedelta(minutes=40)},
            {"id": "g4", "title": "关于滨江区化工厂爆炸事故的情况通报", "link": "https://gov.example/notice/4",
             "published": NOW - timedelta(minutes=30)},
        ]))
        path = write_config(tmp_path / "cfg", receiver_url=receiver.url("/hook"), sources=[("市民留言", server.url("/citizens"))],
                            extra=official_source(server.url("/gov")) + extra)
        cfg = load(path)
        app = build(cfg, FakeClock(NOW))
        poller = Poller(app.sessions, make_client(HttpConfig(host_delay="0s")), HttpConfig(host_delay="0s"), app.clock)
        poller.register(cfg.main.source)
        for source in cfg.main.source:  # the citizens first: the notices come after the incidents began
            assert poller.poll(source).status == "new"
            app.pipeline.process_pending()
        return path, cfg, app

    return make


def incidents(app) -> list[Incident]:
    with app.sessions() as s:
        rows = s.scalars(select(Incident).order_by(Incident.id)).all()
        for r in rows:
            r.clocks  # noqa: B018
        return rows


def proposals(app) -> list[tuple[int, str, str]]:
    with app.sessions() as s:
        return [(e.incident_id, e.data["clock"], e.data["url"])
                for e in s.scalars(select(Event).where(Event.kind == "evidence_proposed").order_by(Event.id))]


def test_an_official_notice_is_proposed_as_the_answer_and_never_opens_an_incident(town, capsys):
    path, cfg, app = town()
    found = incidents(app)
    assert [(i.rule, i.post_count) for i in found] == [("黑臭水体", 1), ("危化品爆炸", 1)]  # no incident from the notices
    assert proposals(app) == [
        (1, "权威回应", "https://gov.example/notice/1"),  # 凤坂河 in 滨江区: the same river
        (2, "召开新闻发布会", "https://gov.example/press/3"),  # a press conference answers that clock
        (2, "发布权威信息", "https://gov.example/notice/4"),
    ]  # g2 names 西湖区 and 龙泉湖 only: another place, not proposed
    with app.sessions() as s:
        notes = s.scalars(select(Notification).where(Notification.kind == "evidence").order_by(Notification.id)).all()
        assert [n.title for n in notes][0] == "【一般】事件 #1 官方渠道已发布，请确认是否作为「权威回应」"
        assert "monitor incidents confirm 1" in notes[0].body and "https://gov.example/notice/1" in notes[0].body
        assert all(c.met_at is None for c in s.scalars(select(ResponseClock)))  # proposed, not yet taken

    database = ["--config", str(path)]
    assert main(["incidents", "show", "1", *database]) == 0
    assert "官方渠道的发布（待采纳" in capsys.readouterr().out
    assert main(["incidents", "confirm", "1", "--actor", "值班员甲", *database]) == 0
    assert "「权威回应」已采纳官方发布登记完成：https://gov.example/notice/1" in capsys.readouterr().out
    clock = next(c for c in incidents(app)[0].clocks if c.name == "权威回应")
    assert clock.met_at == NOW - timedelta(hours=1) and clock.met_by == "值班员甲"  # met when the notice was published
    assert clock.evidence == "https://gov.example/notice/1"
    assert main(["incidents", "confirm", "1", *database]) == 1  # nothing left to take
    assert "没有待采纳的官方发布" in capsys.readouterr().err
    assert main(["incidents", "confirm", "2", "--post", "999", *database]) == 1


def test_with_official_meets_the_notice_meets_the_clock_and_counts_for_its_department(town):
    _path, cfg, app = town('[incidents]\nofficial_meets = true\n')
    first, second = incidents(app)
    river = next(c for c in first.clocks if c.name == "权威回应")
    assert river.met_at == NOW - timedelta(hours=1) and river.met_by == "system:官方渠道:区政府网站"
    assert {c.name: c.met_at for c in second.clocks} == {
        "发布权威信息": NOW - timedelta(minutes=30), "召开新闻发布会": NOW - timedelta(minutes=40)}
    from monitor.reports.collect import collect
    from monitor.reports.period import iso_week

    with app.sessions() as s:
        report = collect(s, cfg.main, iso_week("2026-W47"), NOW + timedelta(days=7))
    kpi = {r[0]: r[1:] for r in report.table("kpi").rows}
    assert kpi["已作权威回应的事件"][:2] == [2, 2]
    # 区政府网站 speaks for 生态环境局: the river's answer is its department's; the explosion's is not
    assert kpi["由责任部门作出首次权威回应"][:2] == [1, 2]


def test_a_notice_before_the_incident_began_or_after_it_closed_is_not_its_answer(tmp_path, server, receiver):
    server.routes["/gov"] = Route(rss([{"id": "g0", "title": "关于滨江区凤坂河黑臭水体整治情况的通报", "published": NOW - timedelta(days=1)}]))
    server.routes["/citizens"] = Route(rss([{"id": "c1", "title": "滨江区凤坂河发黑发臭", "published": NOW - timedelta(hours=3)}]))
    path = write_config(tmp_path / "cfg", receiver_url=receiver.url("/hook"), sources=[("市民留言", server.url("/citizens"))],
                        extra=official_source(server.url("/gov")))
    cfg = load(path)
    app = build(cfg, FakeClock(NOW))
    poller = Poller(app.sessions, make_client(HttpConfig(host_delay="0s")), HttpConfig(host_delay="0s"), app.clock)
    poller.register(cfg.main.source)
    for source in cfg.main.source:
        poller.poll(source)
        app.pipeline.process_pending()
    assert len(incidents(app)) == 1 and proposals(app) == []  # yesterday's notice is not today's answer


def test_the_evidence_alerts_one_tap_link_takes_the_notice(make_config, receiver):
    world = ConsoleWorld(make_config, receiver, extra=official_source("http://127.0.0.1:9/gov"))
    try:
        from monitor.sources import RawPost
        from monitor.store.posts import source_row, store_posts

        world.post("滨江区凤坂河发黑发臭，气味难闻")
        world.later(timedelta(minutes=30))
        with world.app.sessions.begin() as s:
            gov = source_row(s, "区政府网站", "http://127.0.0.1:9/gov").id
            store_posts(s, gov, [RawPost("g1", "https://gov.example/notice/1", "关于滨江区凤坂河黑臭水体整治情况的通报", "",
                                         None, world.clock.now())], world.clock.now())
        world.app.pipeline.process_pending()
        world.deliver()
        evidence = [p for p in receiver.posts if "官方渠道已发布" in p["payload"]["title"]]
        assert len(evidence) == 1
        [link] = [m for m in world.ack_links() if m in evidence[0]["payload"]["message"]]
        anyone = world.client()
        shown = anyone.get(link)
        assert shown.status_code == 200 and "采纳官方发布作为事件 #1 的「权威回应」" in shown.text
        with world.app.sessions() as s:
            assert s.scalars(select(ResponseClock).where(ResponseClock.name == "权威回应")).one().met_at is None  # GET changes nothing
        done = anyone.post(link, data={"csrf": csrf(anyone, link)})
        assert done.status_code == 200 and "已采纳" in done.text
        with world.app.sessions() as s:
            clock = s.scalars(select(ResponseClock).where(ResponseClock.name == "权威回应")).one()
            assert clock.evidence == "https://gov.example/notice/1" and clock.met_by.endswith("（告警链接）")
        again = anyone.post(link, data={"csrf": csrf(anyone, "/login")})
        assert again.status_code == 400 and "没有再次执行任何操作" in again.text
        # the incident page no longer offers it
        world.user("值班员乙", "值班员")
        page = world.login("值班员乙").get("/incidents/1")
        assert "官方渠道的发布（待采纳）" not in page.text and "https://gov.example/notice/1" in page.text
    finally:
        world.close()
