"""The duty console over real HTTP: one-tap links, CSRF, roles, escaping, throttling, the API."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from monitor.store.models import Event, Incident, Source

from .console_world import PASSWORD, ConsoleWorld, csrf


@pytest.fixture
def world(make_config, receiver):
    w = ConsoleWorld(make_config, receiver)
    yield w
    w.close()


def incident(world, incident_id=1) -> Incident:
    with world.app.sessions() as s:
        inc = s.get(Incident, incident_id)
        inc.clocks  # load them before the session ends
        return inc


def events(world, incident_id=1) -> list[tuple[str, str]]:
    with world.app.sessions() as s:
        return [(e.kind, e.actor) for e in s.scalars(select(Event).where(Event.incident_id == incident_id).order_by(Event.id))]


def test_every_alert_carries_the_incident_page_and_a_one_tap_link_that_acts_once(world):
    world.post("开发区化工厂发生爆炸", "浓烟滚滚")
    assert world.deliver() == 1
    message = world.receiver.posts[0]["payload"]["message"]
    assert f"{world.base}/incidents/1" in message and "monitor incidents ack" not in message
    [link] = world.ack_links()
    anyone = world.client()  # no login: the link is the permission

    shown = anyone.get(link)
    assert shown.status_code == 200 and "确认收到事件 #1" in shown.text
    assert incident(world).acked_at is None, "opening the link (a preview bot) must change nothing"

    token = csrf(anyone, link)
    done = anyone.post(link, data={"csrf": token})
    assert done.status_code == 200 and "已确认" in done.text
    inc = incident(world)
    assert inc.acked_at == world.clock.now() and inc.acked_by.endswith("（告警链接）")
    assert ("acknowledged", inc.acked_by) in events(world)

    again = anyone.post(link, data={"csrf": token})
    assert again.status_code == 400 and "使用过" in again.text
    assert len([e for e in events(world) if e[0] == "acknowledged"]) == 1


def test_forged_and_expired_links_say_so_and_change_nothing(world):
    world.post("开发区化工厂发生爆炸")
    world.deliver()
    [link] = world.ack_links()
    anyone = world.client()
    head, _, tail = link.rpartition(".")
    forged = head + "." + ("A" if tail[0] != "A" else "B") + tail[1:]
    r = anyone.post(forged, data={"csrf": csrf(anyone, "/login")})
    assert r.status_code == 400 and "链接无效" in r.text
    other = link.replace("/a/", "/a/x")
    assert "链接无效" in anyone.get(other).text

    token = csrf(anyone, link)
    world.later(world.cfg.main.web.link_ttl + timedelta(minutes=1))
    r = anyone.post(link, data={"csrf": token})
    assert r.status_code == 400 and "链接已过期" in r.text
    assert incident(world).acked_at is None


def test_forms_without_the_right_csrf_token_are_refused(world):
    world.user("zhang", "管理员")
    c = world.client()
    assert c.post("/login", data={"name": "zhang", "password": PASSWORD}).status_code == 403
    c = world.login("zhang")
    world.post("开发区化工厂发生爆炸")
    for data in ({}, {"csrf": "wrong"}):
        r = c.post("/incidents/1/ack", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    assert incident(world).acked_at is None
    r = c.post("/incidents/1/ack", data={"csrf": csrf(c, "/incidents/1")})
    assert r.status_code == 303 and incident(world).acked_by == "zhang"


def test_roles_decide_who_may_do_what(world):
    world.user("duty", "值班员")
    world.user("admin", "管理员")
    world.user("leader", "分管领导")
    world.post("开发区化工厂发生爆炸")
    world.post("城东河道黑臭")
    duty = world.login("duty")
    token = csrf(duty, "/incidents/1")
    assert "关闭事件" not in duty.get("/incidents/1").text
    for action, data in (("close", {}), ("merge", {"other": "2"}), ("regrade", {"level": "一般"})):
        r = duty.post(f"/incidents/1/{action}", data={"csrf": token, **data})
        assert r.status_code == 403 and "无权" in r.text, action
    assert incident(world).state == "open" and incident(world, 2).merged_into is None
    assert duty.post("/incidents/1/ack", data={"csrf": token}).status_code == 303

    leader = world.login("leader")
    assert leader.get("/").headers["location"] == "/overview"
    assert "按时率" in leader.get("/overview").text
    r = leader.post("/incidents/2/ack", data={"csrf": csrf(leader, "/incidents/2")})
    assert r.status_code == 403

    admin = world.login("admin")
    r = admin.post("/incidents/1/close", data={"csrf": csrf(admin, "/incidents/1")})
    assert r.status_code == 303 and incident(world).state == "closed"
    assert ("closed", "admin") in events(world)


def test_a_department_account_acts_on_its_own_departments_incidents(world):
    world.user("env", "科室负责人", department="生态环境局")
    world.post("开发区化工厂发生爆炸")  # 应急管理局
    world.post("城东河道黑臭")  # 生态环境局
    c = world.login("env")
    r = c.post("/incidents/1/ack", data={"csrf": csrf(c, "/incidents/1")})
    assert r.status_code == 403 and "应急管理局负责" in r.text
    assert c.post("/incidents/2/ack", data={"csrf": csrf(c, "/incidents/2")}).status_code == 303
    assert incident(world, 2).acked_by == "env" and incident(world).acked_at is None


def test_hostile_post_text_and_links_show_as_text(world):
    world.user("duty", "值班员")
    world.post("化工厂爆炸<script>alert(1)</script>", "<img src=x onerror=alert(2)> 现场", url="javascript:alert(3)")
    c = world.login("duty")
    page = c.get("/incidents/1").text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert 'href="javascript:' not in page
    board = c.get("/").text
    assert "<script>alert" not in board
    r = c.get("/incidents/1")
    assert "script-src 'self'" in r.headers["content-security-policy"] and r.headers["referrer-policy"] == "no-referrer"
    # an evidence "link" typed by a person is not followed either
    c.post("/incidents/1/met", data={"csrf": csrf(c, "/incidents/1"), "clock": "发布权威信息", "evidence": "javascript:alert(4)"})
    page = c.get("/incidents/1").text
    assert "javascript:alert(4)" in page and 'href="javascript:' not in page


def test_ten_wrong_passwords_lock_the_account(world):
    world.user("duty", "值班员")
    c = world.client()
    for _ in range(10):
        r = c.post("/login", data={"name": "duty", "password": "wrong-password", "csrf": csrf(c, "/login")})
        assert r.status_code == 401 and "用户名或密码错误" in r.text
    r = c.post("/login", data={"name": "duty", "password": PASSWORD, "csrf": csrf(c, "/login")})
    assert r.status_code == 401 and "已锁定" in r.text
    world.later(world.cfg.main.web.lockout + timedelta(seconds=1))
    assert world.login("duty")


def test_a_reset_password_ends_existing_sessions(world):
    from monitor import accounts

    world.user("duty", "值班员")
    c = world.login("duty")
    assert c.get("/").status_code == 200
    with world.app.sessions.begin() as s:
        accounts.set_password(s, "duty", "another-pass-1")
    assert c.get("/").status_code == 303


def test_met_from_the_console_stops_the_clock_with_evidence_and_note(world):
    world.user("duty", "值班员")
    world.post("开发区化工厂发生爆炸")
    c = world.login("duty")
    world.later(timedelta(hours=1))
    r = c.post("/incidents/1/met", data={"csrf": csrf(c, "/incidents/1"), "clock": "发布权威信息",
                                         "evidence": "https://gov.example/notice/1", "note": "已发布情况通报"})
    assert r.status_code == 303
    page = c.get("/incidents/1").text
    assert "已发布情况通报" in page  # the timeline's entry
    clock = next(x for x in incident(world).clocks if x.name == "发布权威信息")
    assert (clock.met_at, clock.met_by, clock.evidence) == (world.clock.now(), "duty", "https://gov.example/notice/1")
    assert 'href="https://gov.example/notice/1"' in page and "登记完成" in page
    with world.app.sessions() as s:
        ev = s.scalars(select(Event).where(Event.kind == "clock_met")).one()
        assert ev.data["note"] == "已发布情况通报" and ev.actor == "duty"


def test_no_secret_appears_in_any_page(world):
    world.user("admin", "管理员")
    with world.app.sessions.begin() as s:
        s.add(Source(name="带令牌的来源", url="https://user:S3cretPassw0rd@board.example/api?token=T0kenValue123", kind="json"))
    world.post("开发区化工厂发生爆炸")
    world.deliver()
    c = world.login("admin")
    for path in ("/", "/incidents/1", "/alerts", "/sources", "/roster", "/reports", "/overview", "/rules/test"):
        text = c.get(path).text
        assert "S3cretPassw0rd" not in text and "T0kenValue123" not in text, path
        assert world.links.secret.decode() not in text
    assert "board.example/api" in c.get("/sources").text


def test_api_with_tokens_roles_and_openapi(world, tmp_path):
    from monitor import accounts

    world.user("oa", "值班员")
    with world.app.sessions.begin() as s:
        token = accounts.new_token(s, "oa", world.clock.now(), "OA")
    world.post("开发区化工厂发生爆炸")
    api = world.client()
    assert api.get("/api/incidents").status_code == 401
    assert api.get("/api/incidents", headers={"Authorization": "Bearer nope"}).status_code == 401
    auth = {"Authorization": f"Bearer {token}"}
    [listed] = api.get("/api/incidents", headers=auth).json()
    assert listed["id"] == 1 and listed["clocks"][0]["name"] == "发布权威信息"
    r = api.post("/api/incidents/1/ack", headers=auth)
    assert r.status_code == 200 and r.json()["incident"]["acked_by"] == "oa"
    assert api.post("/api/incidents/1/ack", headers=auth).status_code == 409
    assert api.post("/api/incidents/1/close", headers=auth).status_code == 403
    assert api.post("/api/incidents/9/ack", headers=auth).status_code == 404
    r = api.post("/api/incidents/1/met", headers=auth, json={"clock": "发布权威信息", "evidence": "https://gov.example/1"})
    assert r.status_code == 200 and r.json()["incident"]["clocks"][0]["met_by"] == "oa"
    spec = api.get("/api/openapi.json").json()
    assert "/api/incidents/{incident_id}/met" in spec["paths"]
    with world.app.sessions.begin() as s:
        accounts.disable(s, "oa")
    assert api.get("/api/incidents", headers=auth).status_code == 401


def test_false_positive_closes_and_is_recorded(world):
    world.user("duty", "值班员")
    world.post("开发区化工厂发生爆炸")
    c = world.login("duty")
    r = c.post("/incidents/1/false_positive", data={"csrf": csrf(c, "/incidents/1"), "note": "演习通知"})
    assert r.status_code == 303
    inc = incident(world)
    assert inc.false_positive and inc.state == "closed"
    assert "误报" in c.get("/incidents/1").text
    assert ("false_positive", "duty") in events(world)


def test_the_board_sorts_by_nearest_deadline_and_shows_who_is_on_duty(world):
    world.user("duty", "值班员")
    world.post("城东河道黑臭")  # 一般: 48 h
    world.post("开发区化工厂发生爆炸")  # 重大: 5 h
    page = world.login("duty").get("/").text
    assert page.index("#2 ") < page.index("#1 ")
    assert re.search(r'data-due="2026-11-20T05:00:00\+00:00"', page)
    assert "未确认" in page and "值班员" in page


def test_a_huge_body_is_refused_before_it_is_read(world):
    world.user("duty", "值班员")
    c = world.login("duty")
    token = csrf(c, "/rules/test")
    r = c.post("/rules/test", data={"csrf": token, "body": "爆炸" * 600_000})
    assert r.status_code == 413
    r = c.post("/rules/test", data={"csrf": token, "title": "化工厂爆炸"})
    assert r.status_code == 200 and "✔ 匹配：危化品爆炸" in r.text and "化工厂<mark>爆炸</mark>" in r.text


def test_a_report_of_any_period_is_made_and_downloaded_from_the_console(world):
    world.user("leader", "分管领导")
    world.post("开发区化工厂发生爆炸")
    c = world.login("leader")
    page = c.get("/reports").text
    assert "生成并下载报告" in page
    r = c.get("/reports/make", params={"week": "2026-W47", "format": "xlsx"})
    assert r.status_code == 200 and r.content[:2] == b"PK"  # an xlsx is a zip
    assert "2026-W47" in r.headers["content-disposition"] or "filename" in r.headers["content-disposition"]
    assert c.get("/reports/make", params={"week": "2026-W99"}).status_code == 400
    monthly = c.get("/reports/make", params={"week": "2026-11", "format": "html"})
    assert monthly.status_code == 200 and "<h1>舆情回应月报（2026-11）</h1>" in monthly.text
    assert c.get("/reports/make", params={"week": "2026-Q5"}).status_code == 400


def test_session_cookies_are_httponly_samesite_and_secure_behind_https(make_config, receiver):
    w = ConsoleWorld(make_config, receiver, extra="secure_cookies = true\n")
    try:
        r = w.client().get("/login")  # the anonymous session that carries the login form's CSRF token
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "; secure" in cookie
    finally:
        w.close()
