"""Delivery officers can trust: real receivers (SMTP, webhook), fallback, storm digests, crashes."""

import signal
from datetime import timedelta

import pytest
from sqlalchemy import select

from monitor.alerts.log import Alert, fire
from monitor.alerts.outbox import deliver_due
from monitor.app import build
from monitor.clock import FakeClock
from monitor.config import load
from monitor.store.models import DeliveryAttempt, Notification, Outbox

from .conftest import Route, Server, rss, scalar, spawn, utc, wait_for, write_config

T0 = utc(2026, 11, 23, 2, 0)


def world(tmp_path, receiver, apprise_extra="", extra=""):
    path = write_config(tmp_path / "cfg", receiver_url=receiver.url("/hook"), extra=extra)
    if apprise_extra:
        with (tmp_path / "cfg" / "apprise.yml").open("a", encoding="utf-8") as f:
            f.write(apprise_extra)
    cfg = load(path)
    clock = FakeClock(T0)
    return cfg, build(cfg, clock), clock


def send(app, key, title, tags=("duty",)):
    with app.sessions.begin() as s:
        fire(s, Alert(key, None, None, "handoff", 0, tuple(tags), app.clock.now(), title, f"{title}：正文"), app.clock.now(), app.channels)


def test_mail_and_webhook_both_receive(tmp_path, receiver, smtp):
    box, port = smtp
    cfg, app, clock = world(tmp_path, receiver, f"  - mailto://127.0.0.1:{port}?from=monitor@example.gov.cn&to=duty@example.gov.cn&mode=insecure:\n      tag: duty\n")
    send(app, "k1", "【重大】新舆情事件 #1：危化品爆炸")
    assert deliver_due(app.sessions, app.channels, clock, cfg.main.alerts) == 2
    assert box.subjects() == ["【重大】新舆情事件 #1：危化品爆炸"]
    assert receiver.titles() == ["【重大】新舆情事件 #1：危化品爆炸"]
    assert deliver_due(app.sessions, app.channels, clock, cfg.main.alerts) == 0  # once per (alert, target)


def test_an_e_mail_alert_keeps_its_lines_in_the_text_part_and_has_a_real_html_part(tmp_path, receiver, smtp):
    box, port = smtp
    cfg, app, clock = world(tmp_path, receiver, f"  - mailto://127.0.0.1:{port}?from=monitor@example.gov.cn&to=duty@example.gov.cn&mode=insecure:\n      tag: mail\n")
    body = "规则：危化品爆炸 <重大>\n首条：鼓楼区化工厂发生爆炸 & 起火\n处置：monitor incidents ack 1"
    with app.sessions.begin() as s:
        fire(s, Alert("m1", None, None, "handoff", 0, ("mail",), clock.now(), "【重大】新舆情事件 #1：危化品爆炸", body), clock.now(), app.channels)
    deliver_due(app.sessions, app.channels, clock, cfg.main.alerts)
    parts = box.parts()
    text = parts["text/plain"].replace("\r\n", "\n")
    assert [line.strip() for line in text.split("\n")] == body.split("\n")  # three lines, not one
    assert "<br/>" in parts["text/html"] and "&lt;重大&gt;" in parts["text/html"] and "&amp; 起火" in parts["text/html"]


def test_failing_channel_falls_back_and_raises_one_ops_alert(tmp_path, receiver):
    backup = Server()
    try:
        extra = '[alerts]\nfallback_tags = ["backup"]\nfallback_after = 3\nchannel_failures = 4\nretry_base = "1s"\nretry_max = "1s"\n'
        apprise = f"  - json://127.0.0.1:{backup.port}/backup:\n      tag: backup, ops\n"
        cfg, app, clock = world(tmp_path, receiver, apprise, extra)
        receiver.fail_posts = 1000
        send(app, "k1", "【一般】回应时限提醒 #1")
        for _ in range(6):
            deliver_due(app.sessions, app.channels, clock, cfg.main.alerts, ops_tags=("ops",))
            clock.advance(timedelta(seconds=2))
        titles = backup.titles()
        assert titles.count("【一般】回应时限提醒 #1") == 1  # the fallback, once
        ops = [t for t in titles if t.startswith("【告警通道异常】")]
        assert len(ops) == 1 and "已连续 4 次发送失败" in ops[0]
        receiver.fail_posts = 0
        clock.advance(timedelta(seconds=5))
        deliver_due(app.sessions, app.channels, clock, cfg.main.alerts, ops_tags=("ops",))
        assert receiver.titles() == ["【一般】回应时限提醒 #1"]  # the channel recovered: delivered there too, once
        with app.sessions() as s:
            attempts = s.scalars(select(DeliveryAttempt.ok).join(Outbox).where(Outbox.tag == "duty")).all()
        assert attempts[-1] is True and attempts.count(False) >= 4
    finally:
        backup.close()


def test_a_refusing_target_fails_at_once_tells_ops_and_falls_back_only_if_nobody_got_it(tmp_path, receiver):
    backup = Server()
    try:
        receiver.routes["/bad"] = Route(b"invalid token", status=401)  # a bad token
        receiver.routes["/busy"] = Route(b"overloaded", status=503)  # a server having a bad minute
        apprise = (f"  - json://127.0.0.1:{receiver.port}/bad:\n      tag: duty, solo\n"
                   f"  - json://127.0.0.1:{receiver.port}/busy:\n      tag: busy\n"
                   f"  - json://127.0.0.1:{backup.port}/backup:\n      tag: backup, ops\n")
        extra = '[alerts]\nfallback_tags = ["backup"]\nfallback_after = 3\nretry_base = "1s"\nretry_max = "1s"\n'
        cfg, app, clock = world(tmp_path, receiver, apprise, extra)
        send(app, "k1", "【重大】新舆情事件 #1：危化品爆炸", tags=("duty",))  # duty: /hook works, /bad refuses
        send(app, "k2", "【重大】新舆情事件 #2：建筑坍塌", tags=("solo",))  # solo: only /bad
        send(app, "k3", "【一般】回应时限提醒 #3", tags=("busy",))
        deliver_due(app.sessions, app.channels, clock, cfg.main.alerts, ops_tags=("ops",))
        with app.sessions() as s:
            rows = s.execute(select(Notification.key, Outbox.target_display, Outbox.state, Outbox.attempts, Outbox.last_error)
                             .join(Outbox, Outbox.notification_id == Notification.id)).all()
        state = {(key, display.rsplit("/", 1)[-1]): st for key, display, st, _a, _e in rows}
        assert state[("k1", "hook")] == "sent" and state[("k1", "bad")] == "failed" and state[("k2", "bad")] == "failed"
        assert all(a == 1 and e.startswith("对方拒绝（HTTP 401") for _k, d, _s, a, e in rows if d.endswith("/bad"))  # one try only
        assert state[("k3", "busy")] == "pending"  # 503: worth retrying
        assert next(e for k, _d, _s, _a, e in rows if k == "k3").startswith("暂时失败（HTTP 503")
        deliver_due(app.sessions, app.channels, clock, cfg.main.alerts, ops_tags=("ops",))
        got = backup.titles()
        assert "【重大】新舆情事件 #2：建筑坍塌" in got  # nobody had #2: the fallback, at once, not after 3 tries
        assert "【重大】新舆情事件 #1：危化品爆炸" not in got  # the duty officer had #1 at /hook
        rejected = [t for t in got if t.startswith("【告警通道异常】") and "拒绝接收" in t]
        assert len(rejected) == 1
    finally:
        backup.close()


def test_a_silent_target_holds_up_no_other_and_its_send_is_bounded(tmp_path, receiver):
    from .hostile import SilentServer

    silent = SilentServer()
    try:
        apprise = f"  - json://127.0.0.1:{silent.port}/never:\n      tag: silent\n"
        cfg, app, clock = world(tmp_path, receiver, apprise, '[alerts]\nsend_timeout = "1s"\n')
        send(app, "k1", "【重大】新舆情事件 #1：危化品爆炸", tags=("silent",))  # due first
        send(app, "k2", "【重大】新舆情事件 #2：建筑坍塌", tags=("duty",))
        assert deliver_due(app.sessions, app.channels, clock, cfg.main.alerts) == 1
        assert receiver.titles() == ["【重大】新舆情事件 #2：建筑坍塌"]
        with app.sessions() as s:
            attempts = s.execute(select(DeliveryAttempt.id, DeliveryAttempt.ok, Outbox.tag).join(Outbox)
                                 .order_by(DeliveryAttempt.id)).all()
            silent_row = s.scalar(select(Outbox).where(Outbox.tag == "silent"))
        # the working target's send was recorded before the silent one gave up: it did not wait behind it
        assert [(ok, tag) for _id, ok, tag in attempts] == [(True, "duty"), (False, "silent")]
        assert silent_row.state == "pending" and "稍后重试" in silent_row.last_error  # bounded, and retried later
    finally:
        silent.close()


def test_storm_becomes_one_digest_but_extreme_severity_pages_alone(tmp_path, receiver):
    cfg, app, clock = world(tmp_path, receiver, extra="[alerts]\nstorm_threshold = 5\n")
    for i in range(7):
        send(app, f"s{i}", f"【一般】新舆情事件 #{i}：黑臭水体")
    send(app, "x", "【特别重大】新舆情事件 #99：隧道坍塌")
    assert deliver_due(app.sessions, app.channels, clock, cfg.main.alerts) == 8
    titles = receiver.titles()
    assert len(titles) == 2 and "【特别重大】新舆情事件 #99：隧道坍塌" in titles
    digest = next(p["payload"] for p in receiver.posts if p["payload"]["title"].startswith("【告警汇总】7 条告警"))
    assert "1. 【一般】新舆情事件 #0：黑臭水体" in digest["message"] and "7. 【一般】新舆情事件 #6" in digest["message"]
    with app.sessions() as s:
        assert sorted(set(s.scalars(select(Outbox.state)))) == ["digest", "sent"]
    assert deliver_due(app.sessions, app.channels, clock, cfg.main.alerts) == 0


def test_the_most_urgent_go_first_and_特别重大_pages_alone_whatever_its_title_says(tmp_path, receiver):
    cfg, app, clock = world(tmp_path, receiver, extra="[alerts]\nstorm_threshold = 0\n")
    with app.sessions.begin() as s:
        for i in range(120):  # a queue of reminders, older than the urgent alert
            fire(s, Alert(f"r{i}", None, "权威回应", "reminder", 0, ("duty",), clock.now(), f"【一般】回应时限提醒 #{i}", "正文",
                          severity="一般"), clock.now(), app.channels)
    clock.advance(timedelta(seconds=1))
    with app.sessions.begin() as s:  # a template override left the level out of the title
        fire(s, Alert("x", None, None, "opened", 0, ("duty",), clock.now(), "新舆情 #99 隧道坍塌", "正文", severity="特别重大"),
             clock.now(), app.channels)
    assert deliver_due(app.sessions, app.channels, clock, cfg.main.alerts, limit=10) == 10
    assert receiver.titles()[0] == "新舆情 #99 隧道坍塌"  # not behind the 120 reminders
    # and in a storm it still pages on its own
    cfg, app, clock = world(tmp_path / "storm", receiver, extra="[alerts]\nstorm_threshold = 3\n")
    receiver.posts.clear()
    with app.sessions.begin() as s:
        for i in range(4):
            fire(s, Alert(f"r{i}", None, "权威回应", "reminder", 0, ("duty",), clock.now(), f"【一般】回应时限提醒 #{i}", "正文",
                          severity="一般"), clock.now(), app.channels)
        fire(s, Alert("x", None, None, "opened", 0, ("duty",), clock.now(), "新舆情 #99 隧道坍塌", "正文", severity="特别重大"),
             clock.now(), app.channels)
    deliver_due(app.sessions, app.channels, clock, cfg.main.alerts)
    assert sorted(t[:6] for t in receiver.titles()) == sorted(["新舆情 #9", "【告警汇总】"])


def test_alerts_cli(tmp_path, receiver, capsys):
    from monitor.cli import main

    cfg, app, clock = world(tmp_path, receiver)
    receiver.fail_posts = 1
    send(app, "k1", "【重大】新舆情事件 #1：危化品爆炸")
    deliver_due(app.sessions, app.channels, clock, cfg.main.alerts)
    with app.sessions() as s:
        note_id = s.scalar(select(Notification.id))
    assert main(["alerts", "list", "--config", str(cfg.path)]) == 0
    out = capsys.readouterr().out
    assert "【重大】新舆情事件 #1：危化品爆炸" in out and "待发送 1" in out
    assert main(["alerts", "show", str(note_id), "--config", str(cfg.path)]) == 0
    out = capsys.readouterr().out
    assert "→ json://127.0.0.1" in out and "尝试 1 次" in out and "失败：" in out
    assert main(["alerts", "list", "--failed", "--config", str(cfg.path)]) == 0
    assert "危化品爆炸" in capsys.readouterr().out


def test_sigkill_between_decided_and_delivered_delivers_once(tmp_path, server, receiver):
    """The alert is decided (logged, queued) while its channel is down; the daemon is killed;
    the channel comes back; after a restart the alert arrives exactly once."""
    from monitor.clock import SystemClock

    now = SystemClock().now()
    server.routes["/f"] = Route(rss([{"id": "a", "title": "化工厂爆炸", "published": now}]))
    cfg = write_config(tmp_path / "cfg", receiver_url=receiver.url("/hook"), sources=[("f", server.url("/f"))],
                       extra='[alerts]\nretry_base = "1s"\nretry_max = "2s"\n')
    cfg.write_text(cfg.read_text().replace('interval = "1m"', 'interval = "1s"'))
    db = tmp_path / "cfg" / "monitor.db"
    receiver.fail_posts = 10_000
    proc = spawn(cfg)
    try:
        wait_for(lambda: (scalar(db, "select count(*) from delivery_attempts") or 0) >= 1, what="a failed attempt")
        assert scalar(db, "select count(*) from notifications where key = '1:opened'") == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert receiver.titles() == []
        receiver.fail_posts = 0
        proc = spawn(cfg)
        wait_for(lambda: receiver.titles() == ["【重大】新舆情事件 #1：危化品爆炸"], what="delivery after restart")
        wait_for(lambda: scalar(db, "select count(*) from outbox where state != 'sent'") == 0, what="sent recorded")
        # A later alert through the same delivery: once it has arrived, the rounds after the
        # first delivery have run, and nothing went out again.
        server.routes["/f"] = Route(rss([{"id": "a", "title": "化工厂爆炸", "published": now},
                                         {"id": "b", "title": "城东河道发黑发臭", "published": now}]))
        wait_for(lambda: len(receiver.titles()) >= 2, what="the later alert")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        proc.kill()
    assert receiver.titles() == ["【重大】新舆情事件 #1：危化品爆炸", "【一般】新舆情事件 #2：黑臭水体"]


def test_templates_from_config_are_used_and_errors_are_located(tmp_path, receiver):
    from monitor.config import ConfigError
    from monitor.sources import RawPost
    from monitor.store.posts import source_row, store_posts

    extra = ('[templates.opened]\ntitle = "新事件 {{ incident.id }}｜{{ incident.severity }}｜{{ incident.department }}"\n'
             'body = "{{ incident.title }} —— {{ clocks | map(attribute=\'status\') | join(\'；\') }}"\n')
    cfg, app, clock = world(tmp_path, receiver, extra=extra)
    with app.sessions.begin() as s:
        sid = source_row(s, "t", "http://x").id
        store_posts(s, sid, [RawPost("p1", None, "化工厂爆炸", "", None, clock.now())], clock.now())
    app.pipeline.process_pending()
    deliver_due(app.sessions, app.channels, clock, cfg.main.alerts)
    [post] = receiver.posts
    assert post["payload"]["title"] == "新事件 1｜重大｜应急管理局"
    assert post["payload"]["message"] == "化工厂爆炸 —— 剩余 5小时；剩余 1天"
    bad = write_config(tmp_path / "bad", extra='[templates.reminder]\nbody = "{{ incident.id "\n')
    with pytest.raises(ConfigError) as e:
        load(bad)
    assert "[templates.reminder] body 模板有误" in e.value.problems[0] and f"{bad}:" in e.value.problems[0]


def test_markdown_goes_to_channels_that_render_it(tmp_path, receiver, monkeypatch):
    import apprise

    from monitor.alerts.channels import Channels

    obj = apprise.Apprise()
    obj.add("dingtalk://" + "a" * 64 + "/", tag="duty")
    obj.add(f"json://127.0.0.1:{receiver.port}/hook", tag="duty")
    channels = Channels(obj)
    seen = {}

    def capture(self, **kwargs):  # DingTalk's servers are not reachable here: see what it would get
        seen.update(kwargs)
        return True

    ding = channels._apprise[0]
    monkeypatch.setattr(type(ding), "notify", capture)
    [ding_target, json_target] = channels.targets("duty")
    assert channels.send(ding_target.id, "标题", "纯文本", markdown="**加粗**") == (True, None)
    assert seen["body"] == "**加粗**" and seen["body_format"] == apprise.NotifyFormat.MARKDOWN
    assert channels.send(json_target.id, "标题", "纯文本", markdown="**加粗**") == (True, None)
    assert receiver.posts[0]["payload"]["message"] == "纯文本"


def test_one_delivery_job_drains_a_burst_instead_of_100_per_cycle(tmp_path, receiver):
    from monitor.alerts.outbox import Delivery
    from monitor.daemon import Daemon

    cfg, app, clock = world(tmp_path, receiver, extra="[alerts]\nstorm_threshold = 0\n")
    with app.sessions.begin() as s:
        for i in range(250):
            fire(s, Alert(f"b{i}", None, None, "handoff", 0, ("duty",), clock.now(), f"【一般】提醒 #{i}", "正文"), clock.now(), app.channels)
    daemon = Daemon(cfg, clock)
    daemon.delivery = Delivery(app.sessions, app.channels, clock, cfg.main.alerts)
    assert daemon.deliver_job() == 250
    assert len(receiver.posts) == 250
