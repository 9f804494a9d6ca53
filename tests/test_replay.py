"""`monitor replay`: the contract (input lines, result shape, determinism) and the clocks."""

import json
from datetime import timedelta

import pytest

from monitor.cli import main
from monitor.clock import parse_iso

from .conftest import POSTS, shared, write_config, write_jsonl

@pytest.fixture
def files(tmp_path):
    cfg = write_config(tmp_path / "cfg")
    posts = write_jsonl(tmp_path / "posts.jsonl", POSTS)
    return cfg, posts, tmp_path


def run_replay(cfg, posts, out, *extra):
    assert main(["replay", "--config", str(cfg), "--posts", str(posts), "--dry-run", "--out", str(out), *extra]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def test_major_incident_without_action_escalates_after_5h_and_24h(files):
    cfg, posts, tmp = files
    result = run_replay(cfg, posts, tmp / "r.json")
    [inc] = result["incidents"]
    assert (inc["rule"], inc["severity"], inc["posts"]) == ("危化品爆炸", "重大", ["p1", "p2"])
    assert inc["opened_at"] == "2026-11-20T08:00:00+08:00"
    assert inc["clocks"] == [
        {"name": "发布权威信息", "due_at": "2026-11-20T13:00:00+08:00", "met_at": None},
        {"name": "召开新闻发布会", "due_at": "2026-11-21T08:00:00+08:00", "met_at": None},
    ]
    steps = {s["key"]: s for s in inc["steps"]}
    five = steps["1:发布权威信息:overdue-0"]
    assert (five["kind"], five["tier"], five["at"]) == ("escalation", "科室负责人", "2026-11-20T13:00:00+08:00")
    day = steps["1:召开新闻发布会:overdue-0"]
    assert (day["kind"], day["tier"], day["at"]) == ("escalation", "科室负责人", "2026-11-21T08:00:00+08:00")
    assert steps["1:发布权威信息:remind-50%"]["at"] == "2026-11-20T10:30:00+08:00"
    assert steps["1:发布权威信息:overdue-1"]["tier"] == "分管领导"
    # Default --until: last event + 72 h; nothing after it.
    last = max(parse_iso(s["at"]) for s in inc["steps"])
    assert last <= parse_iso("2026-11-20T09:00:00+08:00") + timedelta(hours=72)
    alerts = result["alerts"]
    assert alerts[0]["title"] == "【重大】新舆情事件 #1：危化品爆炸" and alerts[0]["tags"] == ["duty"]
    assert alerts[0]["at"] == "2026-11-20T08:00:00+08:00"
    escalation = next(a for a in alerts if "升级" in a["title"])
    assert escalation["tags"] == ["lead"] and "已升级至：科室负责人" in escalation["body"]
    assert len(alerts) == len(inc["steps"]) + 1  # the opening alert, then one per step


def test_actions_ack_met_close(files):
    cfg, posts, tmp = files
    actions = write_jsonl(tmp / "actions.jsonl", [
        {"at": "2026-11-20T08:30:00+08:00", "post": "p2", "action": "ack"},
        {"at": "2026-11-20T11:00:00+08:00", "post": "p1", "action": "met", "clock": "发布权威信息", "evidence": "https://gov.example/notice"},
        {"at": "2026-11-21T07:00:00+08:00", "post": "p1", "action": "met", "clock": "召开新闻发布会"},
        {"at": "2026-11-21T09:00:00+08:00", "post": "p1", "action": "close"},
    ])
    result = run_replay(cfg, posts, tmp / "r.json", "--actions", str(actions))
    [inc] = result["incidents"]
    assert [c["met_at"] for c in inc["clocks"]] == ["2026-11-20T11:00:00+08:00", "2026-11-21T07:00:00+08:00"]
    assert [s["kind"] for s in inc["steps"]] == ["reminder", "reminder"]  # 10:30 for 5 h; 20:00 for 24 h
    assert "errors" not in result


def test_regrade_action_and_unknown_post_is_reported(files):
    cfg, posts, tmp = files
    more = write_jsonl(tmp / "more.jsonl", POSTS + [
        {"source": "12345", "id": "q2", "title": "河道黑臭", "body": "", "published_at": "2026-11-20T10:00:00+08:00"},
    ])
    actions = write_jsonl(tmp / "a.jsonl", [
        {"at": "2026-11-20T10:30:00+08:00", "post": "q2", "action": "regrade", "level": "重大"},
        {"at": "2026-11-20T10:30:00+08:00", "post": "nope", "action": "ack"},
    ])
    result = run_replay(cfg, more, tmp / "r.json", "--actions", str(actions), "--until", "2026-11-20T16:00:00+08:00")
    q2 = result["incidents"][1]
    assert q2["severity"] == "重大" and [c["name"] for c in q2["clocks"]] == ["发布权威信息", "召开新闻发布会"]
    assert any(s["key"] == "2:发布权威信息:overdue-0" and s["at"] == "2026-11-20T15:00:00+08:00" for s in q2["steps"])
    assert result["errors"] == ["2026-11-20T10:30:00+08:00 ack: 帖文 nope 不属于任何事件"]


def test_same_input_same_bytes(files):
    cfg, posts, tmp = files
    run_replay(cfg, posts, tmp / "a.json")
    run_replay(cfg, posts, tmp / "b.json")
    assert (tmp / "a.json").read_bytes() == (tmp / "b.json").read_bytes()


def test_bad_input_line_is_named(files, capsys):
    cfg, posts, tmp = files
    bad = tmp / "bad.jsonl"
    bad.write_text(json.dumps(POSTS[0]) + "\n{not json\n", encoding="utf-8")
    assert main(["replay", "--config", str(cfg), "--posts", str(bad), "--dry-run", "--out", str(tmp / "x.json")]) == 2
    assert f"{bad}:2" in capsys.readouterr().err
    bad.write_text(json.dumps({**POSTS[0], "published_at": "yesterday"}) + "\n", encoding="utf-8")
    assert main(["replay", "--config", str(cfg), "--posts", str(bad), "--dry-run", "--out", str(tmp / "x.json")]) == 2
    assert "published_at" in capsys.readouterr().err


def test_without_dry_run_alerts_go_to_the_channels(tmp_path, receiver):
    cfg = write_config(tmp_path / "cfg", receiver_url=receiver.url("/hook"))
    posts = write_jsonl(tmp_path / "p.jsonl", POSTS[:1])
    out = tmp_path / "r.json"
    assert main(["replay", "--config", str(cfg), "--posts", str(posts), "--out", str(out), "--until", "2026-11-20T13:00:00+08:00"]) == 0
    result = json.loads(out.read_text())
    assert receiver.titles() == [a["title"] for a in result["alerts"]]
    assert len(receiver.titles()) == 4  # opened, 2 reminders, escalation at 13:00


def test_replay_into_a_database_then_officer_cli(files, capsys):
    cfg, posts, tmp = files
    url = f"sqlite:///{tmp / 'history.db'}"
    run_replay(cfg, posts, tmp / "r.json", "--database", url)
    capsys.readouterr()
    assert main(["incidents", "list", "--config", str(cfg), "--database", url]) == 0
    out = capsys.readouterr().out
    assert "#1【重大】待处置 危化品爆炸" in out and "已超时" in out
    assert main(["incidents", "ack", "1", "--actor", "值班员甲", "--config", str(cfg), "--database", url]) == 0
    assert main(["incidents", "met", "1", "发布权威信息", "--evidence", "https://gov/x", "--actor", "值班员甲", "--config", str(cfg), "--database", url]) == 0
    out = capsys.readouterr().out
    due = next(c["due_at"] for c in json.loads((tmp / "r.json").read_text(encoding="utf-8"))["incidents"][0]["clocks"] if c["name"] == "发布权威信息")
    # Beijing time, as everywhere a person reads: the due time as the replay result gives it (+08:00)
    assert "超时" in out and f"截止 {due[:10]} {due[11:16]}）" in out
    assert main(["incidents", "met", "1", "发布权威信息", "--config", str(cfg), "--database", url]) == 1
    err = capsys.readouterr().err
    assert "已于 " in err and "+00:00" not in err and "UTC" not in err
    assert main(["incidents", "ack", "1", "--config", str(cfg), "--database", url]) == 1
    err = capsys.readouterr().err
    assert "由 值班员甲 确认" in err and "+00:00" not in err
    assert main(["incidents", "met", "1", "不存在的时限", "--config", str(cfg), "--database", url]) == 1
    assert "没有时限「不存在的时限」" in capsys.readouterr().err
    assert main(["incidents", "regrade", "1", "特别重大", "--config", str(cfg), "--database", url]) == 0
    assert main(["incidents", "close", "1", "--config", str(cfg), "--database", url]) == 0
    capsys.readouterr()
    assert main(["incidents", "show", "1", "--config", str(cfg), "--database", url]) == 0
    out = capsys.readouterr().out
    for expected in ("已关闭", "确认收到（值班员甲）", "登记回应（值班员甲）", "调整级别", "回应超时升级", "https://gov/x"):
        assert expected in out
    assert "+00:00" not in out  # the regrade's clocks in the timeline are Beijing time too
    assert main(["incidents", "list", "--config", str(cfg), "--database", url]) == 0
    assert "没有未关闭的事件" in capsys.readouterr().out


def test_real_weibo_burst_of_the_2013_yaan_earthquake(tmp_path):
    """Real posts of April 2013 (CED corpus): the 雅安地震 posts make one incident per burst."""
    src = shared("weibo_ced/original_microblogs.jsonl")
    rows = [json.loads(line) for line in src.open(encoding="utf-8")]
    april = [r for r in rows if r["time_iso"].startswith("2013-04")]
    posts = write_jsonl(tmp_path / "p.jsonl", [
        {"source": "weibo", "id": r["thread_id"], "title": "", "body": r["text"], "published_at": r["time_iso"]} for r in april
    ])
    words = '[[rule]]\nname = "地震"\nterms = ["地震"]\nseverity = "特别重大"\ncategory = "自然灾害"\ndepartment = "应急管理局"\n'
    cfg = write_config(tmp_path / "cfg", watchwords=words)
    result = run_replay(cfg, posts, tmp_path / "r.json")
    quake = [i for i in result["incidents"] if i["opened_at"].startswith("2013-04-20")]
    assert len(quake) == 1
    earthquake_posts = {r["thread_id"] for r in april if "地震" in r["text"] and r["time_iso"].startswith("2013-04-20")}
    assert earthquake_posts <= set(quake[0]["posts"])
    assert quake[0]["clocks"][0]["name"] == "发布权威信息"


def test_result_explains_each_post(files):
    cfg, posts, tmp = files
    result = run_replay(cfg, posts, tmp / "r.json")
    [inc] = result["incidents"]
    assert inc["matches"][0] == {"post": "p1", "terms": ["爆炸"], "checks": ["关键词成立 2 次"],
                                 "hits": [{"term": "爆炸", "text": "爆炸", "field": "title", "start": 3, "end": 5},
                                          {"term": "爆炸", "text": "爆炸", "field": "body", "start": 8, "end": 10}]}
    assert inc["matches"][1]["hits"][0]["text"] == "爆燃"


def test_regrades_show_their_clocks_and_can_count_from_the_regrade(tmp_path):
    posts = write_jsonl(tmp_path / "p.jsonl", [{"source": "12345", "id": "q1", "title": "河道黑臭", "published_at": "2026-11-20T08:00:00+08:00"}])
    actions = write_jsonl(tmp_path / "a.jsonl", [
        {"at": "2026-11-20T10:00:00+08:00", "post": "q1", "action": "regrade", "level": "重大"},
        {"at": "2026-11-20T12:00:00+08:00", "post": "q1", "action": "regrade", "level": "一般"},
    ])
    for start, first_due in (("first_post", "2026-11-20T13:00:00+08:00"), ("regrade", "2026-11-20T15:00:00+08:00")):
        cfg = write_config(tmp_path / start, extra=f'[incidents]\nregrade_clocks_from = "{start}"\n')
        result = run_replay(cfg, posts, tmp_path / f"{start}.json", "--actions", str(actions), "--until", "2026-11-20T14:00:00+08:00")
        up, down = result["incidents"][0]["regrades"]
        assert (up["at"], up["from"], up["to"]) == ("2026-11-20T10:00:00+08:00", "一般", "重大")
        assert [(c["name"], c["due_at"]) for c in up["clocks"]] == [("发布权威信息", first_due), ("召开新闻发布会", up["clocks"][1]["due_at"])]
        assert [c["name"] for c in down["clocks"]] == ["权威回应"]  # back down: the 48 h clock again, as it was
        assert down["clocks"][0]["due_at"] == "2026-11-22T08:00:00+08:00"


def test_replay_accepts_repost_links(files):
    cfg, _posts, tmp = files
    posts = write_jsonl(tmp / "reposts.jsonl", [
        POSTS[0],
        {"source": "weibo", "id": "r1", "title": "", "body": "转发微博", "published_at": "2026-11-20T08:05:00+08:00", "repost_of": "p1"},
        {"source": "weibo", "id": "r2", "title": "", "body": "无语", "published_at": "2026-11-20T08:06:00+08:00", "repost_of": "r1"},
    ])
    result = run_replay(cfg, posts, tmp / "r.json")
    assert result["incidents"][0]["posts"] == ["p1", "r1", "r2"]  # a chain of reposts follows its original


def test_merge_and_split_from_the_command_line(files, capsys):
    cfg, _posts, tmp = files
    url = f"sqlite:///{tmp / 'ms.db'}"
    posts = write_jsonl(tmp / "two.jsonl", [POSTS[0], {**POSTS[1], "id": "p9", "published_at": "2026-11-22T08:30:00+08:00"}])
    run_replay(cfg, posts, tmp / "r.json", "--database", url, "--until", "2026-11-22T09:00:00+08:00")
    capsys.readouterr()
    assert main(["incidents", "merge", "1", "2", "--actor", "科长", "--config", str(cfg), "--database", url]) == 0
    assert "事件 #2 已并入 #1" in capsys.readouterr().out
    assert main(["incidents", "split", "1", "p9", "--actor", "科长", "--config", str(cfg), "--database", url]) == 0
    assert "成为新事件 #3" in capsys.readouterr().out
    assert main(["incidents", "show", "1", "--config", str(cfg), "--database", url]) == 0
    out = capsys.readouterr().out
    # The kept incident's timeline says what happened to it: another incident came in.
    assert "其他事件并入本事件（科长）" in out and "拆出帖文（科长）" in out
    assert main(["incidents", "merge", "1", "1", "--config", str(cfg), "--database", url]) == 1


def test_false_positive_merge_and_split_actions(files):
    cfg, posts, tmp = files
    more = write_jsonl(tmp / "more.jsonl", POSTS + [
        {"source": "12345", "id": "q2", "title": "河道黑臭", "body": "", "published_at": "2026-11-20T10:00:00+08:00"},
    ])
    actions = write_jsonl(tmp / "a.jsonl", [
        {"at": "2026-11-20T09:30:00+08:00", "post": "p1", "action": "split", "posts": ["p2"]},
        {"at": "2026-11-20T09:45:00+08:00", "post": "p1", "action": "merge", "other": "p2"},
        {"at": "2026-11-20T10:30:00+08:00", "post": "q2", "action": "false_positive", "note": "演练稿"},
    ])
    result = run_replay(cfg, more, tmp / "r.json", "--actions", str(actions))
    assert "errors" not in result
    first, split_out, q2 = result["incidents"]
    assert first["posts"] == ["p1", "p2"] and "p2" in split_out["posts"]
    assert q2["posts"] == ["q2"] and q2["steps"] == []  # 误报: its 48 h clock never reminds
    bad = write_jsonl(tmp / "bad.jsonl", [{"at": "2026-11-20T09:30:00+08:00", "post": "p1", "action": "split"}])
    assert main(["replay", "--config", str(cfg), "--posts", str(more), "--actions", str(bad), "--dry-run",
                 "--out", str(tmp / "x.json")]) != 0


def test_false_positive_from_the_cli(files, capsys):
    cfg, posts, tmp = files
    url = f"sqlite:///{tmp / 'history.db'}"
    run_replay(cfg, posts, tmp / "r.json", "--database", url)
    capsys.readouterr()
    assert main(["incidents", "false-positive", "1", "--note", "演练稿", "--actor", "值班员甲", "--config", str(cfg),
                 "--database", url]) == 0
    assert "已标记为误报并关闭" in capsys.readouterr().out
    assert main(["incidents", "false-positive", "1", "--config", str(cfg), "--database", url]) == 1
    assert "已标记为误报" in capsys.readouterr().err
    assert main(["incidents", "show", "1", "--config", str(cfg), "--database", url]) == 0
    out = capsys.readouterr().out
    assert "事件 #1【重大】误报" in out and "标记为误报（值班员甲）" in out
