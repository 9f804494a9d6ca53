"""Message boards as sources: real list pages and a JSON board on 127.0.0.1."""

import csv
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from monitor.app import build
from monitor.cli import main
from monitor.clock import FakeClock, parse_iso
from monitor.config import HttpConfig, SourceConfig, load
from monitor.sources import health
from monitor.sources.http import make_client
from monitor.sources.poll import Poller
from monitor.store.models import Event, Notification, Post, ResponseClock, Source

from .conftest import PaceTime, Route, shared, write_config

NOW = parse_iso("2021-03-03T09:00:00+08:00")
WORDS = """
[[rule]]
name = "噪音扰民"
terms = ["噪音", "扰民"]
severity = "一般"
category = "环境保护"
department = "生态环境局"
"""


def poller_for(app, cfg_http=None):
    http = cfg_http or HttpConfig(host_delay="0s")
    return Poller(app.sessions, make_client(http), http, app.clock)


@pytest.fixture
def world(tmp_path, receiver):
    def make(extra="", sources=()):
        path = write_config(tmp_path / "cfg", receiver_url=receiver.url("/hook"), watchwords=WORDS, extra=extra, sources=sources)
        cfg = load(path)
        app = build(cfg, FakeClock(NOW))
        return cfg, app

    return make


def posts_of(app, source):
    with app.sessions() as s:
        return s.scalars(select(Post).join(Source).where(Source.name == source).order_by(Post.id)).all()


# ---- HTML list pages -------------------------------------------------------------------


TIEBA = {"id": "@data-tid", "title": "a.j_th_tit::text", "url": "a.j_th_tit::attr(href)", "author": ".frs-author-name::text",
         "published": ".is_show_create_time::text", "body": ".threadlist_abs::text"}
DISCUZ = {"id": "@id", "title": "a.s.xst::text", "url": "a.s.xst::attr(href)", "author": "td.by cite a::text", "published": "td.by em span::text"}


@pytest.mark.parametrize("page, items, fields, count, first_title", [
    ("gne_tieba_thread_list.html", "li.j_thread_list", TIEBA, 50, "【招聘】贴吧热议吧吧务邀请你的加入！！"),
    ("gne_discuz_forum_thread_list_nishuihan.html", "tbody[id^=normalthread_]", DISCUZ, 40, "新买的机子老出现游戏卡屏或卡崩"),
    ("gerapy_rtfund_disclosure_notice_list.html", "li:has(> span):has(> a)", {"title": "a::text", "url": "a::attr(href)", "published": "span::text"},
     None, None),
])
def test_real_list_pages(world, server, page, items, fields, count, first_title):
    body = shared(f"html/{page}").read_bytes()
    server.routes["/list"] = Route(body, headers={"Content-Type": "text/html; charset=gb2312"})  # a wrong declaration, as served
    cfg, app = world()
    source = SourceConfig(name="board", type="html", url=server.url("/list"), items=items, fields=fields)
    result = poller_for(app).poll(source)
    assert result.status == "new", result.error
    stored = posts_of(app, "board")
    if count is not None:
        assert len(stored) == count and stored[0].title == first_title
    assert len(stored) >= 10
    assert all(p.url.startswith("http") for p in stored)  # relative links made absolute
    assert sum(p.published_at is not None for p in stored) >= 0.9 * len(stored)
    assert not any("\ufffd" in p.title for p in stored)  # bytes won over the wrong charset
    assert poller_for(app).poll(source).new_posts == 0  # read again: nothing new


def test_gbk_page_and_changed_layout(world, server):
    page = "<html><head><meta charset='gbk'></head><body><ul>" + "".join(
        f"<li class='msg'><a href='/m/{i}'>小区工地夜间施工噪音扰民{i}</a><span class='t'>2021-03-0{i} 21:41</span></li>" for i in range(1, 4)
    ) + "</ul></body></html>"
    server.routes["/gbk"] = Route(page.encode("gbk"), headers={"Content-Type": "text/html"})
    cfg, app = world()
    source = SourceConfig(name="gbk", type="html", url=server.url("/gbk"), items="li.msg",
                          fields={"url": "a::attr(href)", "title": "a::text", "published": "span.t::text"})
    assert poller_for(app).poll(source).new_posts == 3
    assert posts_of(app, "gbk")[0].title == "小区工地夜间施工噪音扰民1"
    # The site changes its markup: a clear error on the source, nothing half-stored.
    server.routes["/gbk"] = Route("<html><body><div class='new'>改版了</div></body></html>".encode("gbk"))
    result = poller_for(app).poll(source)
    assert result.status == "failed" and "没有找到任何条目" in result.error and "li.msg" in result.error
    with app.sessions() as s:
        row = s.scalars(select(Source).where(Source.name == "gbk")).one()
    assert row.consecutive_failures == 1 and "页面结构可能已改变" in row.last_error
    assert len(posts_of(app, "gbk")) == 3


def test_detail_pages_and_a_failing_one_is_not_half_stored(world, server):
    server.routes["/list"] = Route("".join(f"<div class='row'><a href='/d/{i}'>标题{i}</a></div>" for i in range(3)).encode())
    for i in range(3):
        server.routes[f"/d/{i}"] = Route(f"<html><div class='content'><p>第{i}条正文：工地噪音</p></div></html>".encode())
    server.routes["/d/2"] = Route(b"down", status=500)
    cfg, app = world()
    source = SourceConfig(name="detail", type="html", url=server.url("/list"), items="div.row",
                          fields={"url": "a::attr(href)", "title": "a::text"}, detail_body="div.content")
    result = poller_for(app).poll(source)
    assert result.new_posts == 2 and "详情页" in result.error
    assert [p.body for p in posts_of(app, "detail")] == ["第0条正文：工地噪音", "第1条正文：工地噪音"]
    server.routes["/d/2"] = Route("<div class='content'>第2条正文</div>".encode())
    assert poller_for(app).poll(source).new_posts == 1  # the same list is read again to retry it
    assert posts_of(app, "detail")[-1].body == "第2条正文"
    detail_requests = [r["path"] for r in server.requests if r["path"].startswith("/d/")]
    assert detail_requests.count("/d/0") == 1  # stored posts' pages are not fetched again


# ---- a JSON board with the columns of the real 领导留言板 rows ----------------------------


def liuyan_rows():
    with shared("complaints/people_liuyan/people_liuyan_fuzhou_2021.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def serve_liuyan(server, rows, per_page=20):
    for page in range(0, (len(rows) + per_page - 1) // per_page):
        chunk = rows[page * per_page:(page + 1) * per_page]
        doc = {"result": "success", "responseData": {"page": page + 1, "threads": [
            {"tid": int(r["id"]), "forumName": r["forumName"], "subject": r["subject"], "stateInfo": r["stateInfo"],
             "dateline": r["dateline"], "content": r["content"]} for r in chunk]}}
        server.routes[f"/api/threads?page={page + 1}"] = Route(json.dumps(doc, ensure_ascii=False).encode(), headers={"Content-Type": "application/json"})


def liuyan_source(server, pages=6, **kw):
    return SourceConfig(
        name="领导留言板", type="json", url=server.url("/api/threads?page={page}"), pages=pages, items="responseData.threads",
        fields={"id": "tid", "title": "subject", "body": "content", "author": "forumName", "published": "dateline",
                "url": "https://liuyan.people.com.cn/threads/content?tid={tid}", "reply_status": "stateInfo"},
        **kw,
    )


def test_json_board_with_pages_and_reply_status(world, server):
    rows = liuyan_rows()
    assert len(rows) == 120
    serve_liuyan(server, rows)
    cfg, app = world()
    assert poller_for(app).poll(liuyan_source(server)).new_posts == 120
    stored = posts_of(app, "领导留言板")
    assert sum(p.replied for p in stored) == sum(r["stateInfo"] == "已办理" for r in rows) == 84
    first = next(p for p in stored if p.external_id == "9356769")
    assert first.title == "福清党校旁，融创保利工地深夜施工噪音扰民！" and first.reply_status == "待回复" and first.replied is False
    assert first.url == "https://liuyan.people.com.cn/threads/content?tid=9356769"
    assert first.published_at.isoformat() == "2021-03-02T13:41:26+00:00"  # stored UTC
    requested = [r["path"] for r in server.requests]
    assert requested[:6] == [f"/api/threads?page={n}" for n in range(1, 7)]


def _reply_world(world, server, extra=""):
    rows = [dict(r, stateInfo="待回复") for r in liuyan_rows()[:20]]  # the board before anyone answered
    serve_liuyan(server, rows)
    cfg, app = world(extra=extra)
    source = liuyan_source(server, pages=1)
    poller = poller_for(app)
    poller.poll(source)
    app.pipeline.process_pending()
    app.pipeline.record_replies()
    # The noise complaint is answered a day later: the board now shows 已办理.
    answered = [dict(r, stateInfo="已办理") if r["id"] == "9356769" else r for r in rows]
    serve_liuyan(server, answered)
    app.clock.advance(timedelta(days=1))
    assert poller.poll(source).status == "new"
    app.pipeline.process_pending()
    return app, app.pipeline.record_replies()


def incident_of(s, external_id):
    from monitor.store.models import IncidentPost

    return s.scalars(select(IncidentPost.incident_id).join(Post, Post.id == IncidentPost.post_id).where(Post.external_id == external_id)).one()


def test_reply_becomes_evidence_and_duty_is_asked_to_confirm(world, server, receiver):
    app, recorded = _reply_world(world, server)
    assert recorded == 1  # only the post whose state changed
    with app.sessions() as s:
        post = s.scalars(select(Post).where(Post.external_id == "9356769")).one()
        incident_id = incident_of(s, "9356769")
        clock = s.scalars(select(ResponseClock).where(ResponseClock.incident_id == incident_id)).one()
        note = s.scalars(select(Notification).where(Notification.key == f"{incident_id}:reply:{post.id}")).one()
        assert [e.data["post"] for e in s.scalars(select(Event).where(Event.kind == "reply_seen"))] == [post.id]
    assert post.replied is True and post.reply_status == "已办理"
    assert clock.met_at is None  # the officer confirms
    assert "已有官方答复" in note.title and f"monitor incidents met {incident_id} 权威回应" in note.body
    assert app.pipeline.record_replies() == 0  # once


def test_reply_can_meet_the_48h_clock_by_itself(world, server):
    app, _ = _reply_world(world, server, extra='[incidents]\nreply_meets = "权威回应"\n')
    with app.sessions() as s:
        clock = s.scalars(select(ResponseClock).where(ResponseClock.incident_id == incident_of(s, "9356769"))).one()
    assert clock.met_at is not None and clock.met_by == "system:留言板答复"
    assert clock.evidence == "https://liuyan.people.com.cn/threads/content?tid=9356769"


def test_broken_json_is_a_clear_error(world, server):
    server.routes["/api/threads?page=1"] = Route(b'{"responseData": {"threads": [', headers={"Content-Type": "application/json"})
    cfg, app = world()
    result = poller_for(app).poll(liuyan_source(server, pages=1))
    assert result.status == "failed" and "不是合法的 JSON" in result.error
    server.routes["/api/threads?page=1"] = Route(b'{"error": "login required"}')
    result = poller_for(app).poll(liuyan_source(server, pages=1))
    assert "responseData.threads" in result.error and posts_of(app, "领导留言板") == []


def test_post_body_and_headers(world, server):
    server.routes["/api/search"] = Route(json.dumps({"rows": [{"id": 1, "t": "噪音"}]}).encode())
    cfg, app = world()
    source = SourceConfig(name="post", type="json", url=server.url("/api/search"), method="POST", body='{"page": {page}}',
                          headers={"X-Requested-With": "XMLHttpRequest"}, items="rows", fields={"id": "id", "title": "t"})
    assert poller_for(app).poll(source).new_posts == 1
    request = server.requests[0]
    assert request["body"] == b'{"page": 1}' and request["headers"]["X-Requested-With"] == "XMLHttpRequest"


# ---- politeness --------------------------------------------------------------------------


def test_one_host_gets_requests_spaced_and_no_more_at_once(world, server):
    for i in range(4):
        server.routes[f"/f{i}"] = Route(f"<ul><li><a href='/x{i}'>帖{i}</a></li></ul>".encode(), delay=0.05)
    cfg, app = world()
    http, pace = HttpConfig(host_delay="0.3s", host_concurrency=1), PaceTime()
    poller = Poller(app.sessions, make_client(http), http, app.clock, gate=pace.gate(http))
    sources = [SourceConfig(name=f"s{i}", type="html", url=server.url(f"/f{i}"), items="li",
                            fields={"url": "a::attr(href)", "title": "a::text"}) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(poller.poll, sources))
    assert len(server.requests) == 4 and pace.peak == 1  # one at a time
    gaps = [b - a for a, b in zip(pace.starts, pace.starts[1:])]
    assert gaps == pytest.approx([0.3, 0.3, 0.3]), gaps  # each start 0.3 s after the one before


def test_retry_after_pauses_the_host(world, server):
    server.routes["/busy"] = Route(b"slow down", status=429, headers={"Retry-After": "1"})
    server.routes["/other"] = Route("<ul><li><a href='/y'>帖</a></li></ul>".encode())
    cfg, app = world()
    http, pace = HttpConfig(host_delay="0s"), PaceTime()
    poller = Poller(app.sessions, make_client(http), http, app.clock, gate=pace.gate(http))
    busy = SourceConfig(name="busy", type="html", url=server.url("/busy"), items="li", fields={"url": "a::attr(href)", "title": "a::text"})
    other = SourceConfig(name="other", type="html", url=server.url("/other"), items="li", fields={"url": "a::attr(href)", "title": "a::text"})
    assert poller.poll(busy).status == "throttled"  # asked again later: not a failure
    poller.poll(other)
    first, second = pace.starts
    assert second - first == pytest.approx(1.0)  # the same host: nobody asks before Retry-After
    assert [r["path"] for r in server.requests] == ["/busy", "/other"]
    with app.sessions() as s:
        row = s.scalars(select(Source).where(Source.name == "busy")).one()
    assert "429" in row.last_error and row.consecutive_failures == 0


def test_user_agent_is_configurable(world, server):
    server.routes["/ua"] = Route("<ul><li><a href='/z'>帖</a></li></ul>".encode())
    cfg, app = world()
    http = HttpConfig(host_delay="0s", user_agent="gov-monitor/1.0 (ops@example.gov.cn)")
    Poller(app.sessions, make_client(http), http, app.clock).poll(
        SourceConfig(name="ua", type="html", url=server.url("/ua"), items="li", fields={"url": "a::attr(href)", "title": "a::text"}))
    assert server.requests[0]["headers"]["User-Agent"] == "gov-monitor/1.0 (ops@example.gov.cn)"


# ---- source health -----------------------------------------------------------------------


def health_alerts(app):
    with app.sessions() as s:
        return [(n.kind, n.title) for n in s.scalars(select(Notification).where(Notification.incident_id.is_(None)).order_by(Notification.id))]


def test_failing_source_alerts_once_and_recovers_once(world, server, receiver):
    server.routes["/f"] = Route(b"oops", status=500)
    cfg, app = world(sources=[("官网", server.url("/f"))], extra='[health]\nfailures = 3\n')
    source = cfg.main.source[0]
    poller = poller_for(app)

    def poll_and_check():
        poller.poll(source)
        with app.sessions.begin() as s:
            health.check(s, cfg.main, app.channels, app.clock.now())
        app.clock.advance(timedelta(minutes=10))

    for _ in range(5):
        poll_and_check()
    assert health_alerts(app) == [("source_failing", "【数据源异常】来源「官网」连续 3 次抓取失败")]
    server.routes["/f"] = Route(b'<rss version="2.0"><channel><item><guid>1</guid><title>a</title></item></channel></rss>')
    poll_and_check()
    poll_and_check()
    assert [k for k, _ in health_alerts(app)] == ["source_failing", "source_recovered"]
    from monitor.alerts.outbox import deliver_due

    deliver_due(app.sessions, app.channels, app.clock, cfg.main.alerts)
    assert [t for t in receiver.titles() if "数据源" in t] == ["【数据源异常】来源「官网」连续 3 次抓取失败", "【数据源恢复】来源「官网」已恢复正常"]
    # A restart re-evaluates from the stored state: nothing is sent again.
    app2 = build(cfg, app.clock)
    with app2.sessions.begin() as s:
        assert health.check(s, cfg.main, app2.channels, app2.clock.now()) == []


def test_a_failing_source_is_told_once_whichever_instance_notices_it(world, server):
    """Two instances check health; the second read the source before the first wrote
    `failing`, and at its own time: the episode's key is the same, so one alert."""
    server.routes["/f"] = Route(b"oops", status=500)
    cfg, app = world(sources=[("官网", server.url("/f"))], extra='[health]\nfailures = 3\n')
    poller = poller_for(app)
    for _ in range(3):
        poller.poll(cfg.main.source[0])
        app.clock.advance(timedelta(minutes=10))
    with app.sessions.begin() as s:
        assert [c.kind for c in health.check(s, cfg.main, app.channels, app.clock.now())] == ["failing"]
    with app.sessions.begin() as s:  # the other instance's stale view, seconds later
        s.execute(text("UPDATE sources SET health_state = 'ok', health_since = NULL"))
    app.clock.advance(timedelta(seconds=20))
    with app.sessions.begin() as s:
        health.check(s, cfg.main, app.channels, app.clock.now())
    assert health_alerts(app) == [("source_failing", "【数据源异常】来源「官网」连续 3 次抓取失败")]


def test_quiet_source_alerts_after_longer_than_usual(world, server):
    cfg, app = world(sources=[("热线", server.url("/q"))])
    source = cfg.main.source[0]
    poller = poller_for(app)
    n = 0
    for _ in range(6):  # a new item every hour
        n += 1
        server.routes["/q"] = Route(f'<rss version="2.0"><channel><item><guid>{n}</guid><title>t{n}</title></item></channel></rss>'.encode())
        poller.poll(source)
        app.clock.advance(timedelta(hours=1))
    with app.sessions() as s:
        gap = s.scalars(select(Source.new_item_gap_s)).one()
    assert 3500 < gap < 3700
    checks = []
    for _ in range(1, 10):  # then silence; usual gap 1 h, threshold max(6 h, 4 × 1 h, 3 × interval)
        app.clock.advance(timedelta(hours=1))
        with app.sessions.begin() as s:
            checks.append([c.kind for c in health.check(s, cfg.main, app.channels, app.clock.now())])
    assert checks.count(["quiet"]) == 1 and sum(map(len, checks)) == 1
    title = health_alerts(app)[0][1]
    # the last item came at 5 h; checked hourly, quiet is seen at 12 h, i.e. 7 h without news
    assert title == "【数据源沉寂】来源「热线」已 7小时 没有新帖文（通常约 1小时 就有新帖文）"
    n += 1
    server.routes["/q"] = Route(f'<rss version="2.0"><channel><item><guid>{n}</guid><title>t{n}</title></item></channel></rss>'.encode())
    poller.poll(source)
    with app.sessions.begin() as s:
        assert [c.kind for c in health.check(s, cfg.main, app.channels, app.clock.now())] == ["recovered"]


# ---- CLI -----------------------------------------------------------------------------------


def test_sources_test_prints_and_stores_nothing(tmp_path, server, capsys):
    rows = liuyan_rows()[:5]
    serve_liuyan(server, rows, per_page=5)
    path = write_config(tmp_path / "cfg", watchwords=WORDS)
    path.write_text(path.read_text() + f'''
[[source]]
name = "留言板"
type = "json"
url = "{server.url('/api/threads?page={page}')}"
items = "responseData.threads"
[source.fields]
id = "tid"
title = "subject"
body = "content"
published = "dateline"
reply_status = "stateInfo"
''', encoding="utf-8")
    assert main(["sources", "test", "留言板", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "提取到 5 条（未写入数据库）" in out and "[9356769] 福清党校旁" in out and "答复：待回复" in out
    assert not (tmp_path / "cfg" / "monitor.db").exists()  # it opened no database at all
    assert main(["sources", "test", "没有这个", "--config", str(path)]) == 2


def test_import_opml(tmp_path, capsys):
    opml = tmp_path / "feeds.opml"
    opml.write_text("""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0"><head><title>政务订阅</title></head><body>
<outline text="政府" title="政府">
  <outline type="rss" text="市政府-政策文件" title="市政府-政策文件" xmlUrl="https://www.example.gov.cn/rss/zcwj.xml"/>
  <outline type="rss" text="生态环境局" xmlUrl="https://sthjj.example.gov.cn/rss.xml"/>
  <outline type="rss" text="重复的" xmlUrl="http://127.0.0.1/already"/>
</outline></body></opml>""", encoding="utf-8")
    path = write_config(tmp_path / "cfg", sources=[("已有", "http://127.0.0.1/already")])
    out = tmp_path / "cfg" / "feeds.toml"
    assert main(["sources", "import-opml", str(opml), "--out", str(out), "--config", str(path)]) == 0
    assert "已写入 2 个来源" in capsys.readouterr().out
    path.write_text(path.read_text().replace('watchwords = "watchwords.toml"', 'watchwords = "watchwords.toml"\nsource_files = ["feeds.toml"]'))
    cfg = load(path)
    assert [s.name for s in cfg.main.source] == ["已有", "市政府-政策文件", "生态环境局"]
    assert main(["sources", "import-opml", str(opml), "--out", str(out), "--config", str(path)]) == 2  # never overwrites
    bad = tmp_path / "bad.opml"
    bad.write_text("<opml><body></body></opml>")
    assert main(["sources", "import-opml", str(bad), "--config", str(path)]) == 2


def test_board_config_errors_are_located(tmp_path):
    from monitor.config import ConfigError

    path = write_config(tmp_path / "cfg")
    path.write_text(path.read_text() + '\n[[source]]\nname = "坏"\ntype = "html"\nurl = "http://127.0.0.1/x"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load(path)
    assert "需要 items" in e.value.problems[0] and f"{path}:" in e.value.problems[0]
