"""The rule engine: every rule key, normalization, boundaries and explanations."""

import pytest

from monitor.config import ConfigError, load_rules
from monitor.matching.matcher import Matcher, TermEntry, WatchRule
from monitor.matching.normalize import normalize_map, original_span


def rule(**kw):
    base = dict(name="r", terms=("黑臭",), severity="一般")
    base.update(kw)
    return WatchRule(**base)


def verdict(spec, title, body=""):
    m = Matcher([spec])
    [v] = m.evaluate(title, body, every_rule=True)
    return v


def test_all_groups_require_one_word_of_each():
    spec = rule(all=(("河", "水体", "河道", "内河"),))
    assert verdict(spec, "城东河道黑臭").matched
    v = verdict(spec, "垃圾桶黑臭")
    assert not v.matched and "缺少「河/水体/河道/内河」之一：不匹配" in v.checks
    assert "同时出现「河」（河/水体/河道/内河 之一）" in verdict(spec, "城东河道黑臭").checks


def test_none_excludes_the_post():
    spec = rule(none=("尾气", "垃圾桶"))
    v = verdict(spec, "汽车尾气黑臭难闻")
    assert not v.matched and any("出现排除词「尾气」" in c for c in v.checks)
    assert verdict(spec, "河水黑臭").checks == ("排除词均未出现：尾气、垃圾桶",)


def test_none_phrases_veto_only_the_occurrence_inside_them():
    spec = rule(none_phrases=("尾气黑臭",))
    v = verdict(spec, "尾气黑臭的公交车")
    assert not v.matched and v.rejected[0].reason == "在排除短语「尾气黑臭」中"
    both = verdict(spec, "尾气黑臭，旁边的河也黑臭")
    assert both.matched and [h.start for h in both.hits] == [10]


def test_near_within_characters():
    spec = rule(near=({"a": "黑臭", "b": "河", "within": 5},))
    assert verdict(spec, "黑臭的那条河").matched
    v = verdict(spec, "黑臭" + "，" * 10 + "河")
    assert not v.matched and "「黑臭」与「河」未在 5 字内同时出现：不匹配" in v.checks


def test_none_phrases_also_veto_group_and_near_words():
    spec = rule(terms=("河",), all=(("黑",),), near=({"a": "黑", "b": "河", "within": 10},), none_phrases=("黑烟",))
    assert verdict(spec, "河边的河水发黑").matched
    v = verdict(spec, "河边工厂冒黑烟")
    assert not v.matched and "缺少「黑」之一：不匹配" in v.checks


def test_near_runs_from_the_title_into_the_body():
    spec = rule(terms=("河",), near=({"a": "黑", "b": "河", "within": 6},))
    assert verdict(spec, "团校旁边那条河", "又黑又臭。").matched
    v = verdict(spec, "团校旁边那条河啥时候开始治理", "又黑又臭。")
    assert not v.matched
    assert verdict(spec, "又黑又臭", "旁边那条河").matched


def test_lead_chars_reads_the_title_and_the_start_of_the_body():
    spec = rule(lead_chars=20)
    assert verdict(spec, "投诉", "河水黑臭").matched
    v = verdict(spec, "小区问题", "1、物业乱收费。" + "。" * 20 + "6、后门的河黑臭")
    assert not v.matched and v.checks[:2] == ("正文只看前 20 字", "关键词未出现")
    assert verdict(spec, "后门的河黑臭", "1、物业乱收费。" + "。" * 30).matched
    kept = verdict(spec, "投诉", "河水黑臭，" + "。" * 30 + "黑臭")
    assert [h.start for h in kept.hits] == [2]


def test_min_count_and_fields():
    assert not verdict(rule(min_count=2), "河水黑臭").matched
    assert verdict(rule(min_count=2), "河水黑臭", "水体黑臭").matched
    only_body = rule(fields=("body",))
    assert not verdict(only_body, "河水黑臭", "没有").matched
    v = verdict(only_body, "标题", "河水黑臭")
    assert v.matched and (v.hits[0].field, v.hits[0].start) == ("body", 2)


def test_boundaries_word_token_none():
    assert not verdict(rule(terms=("市长",)), "南京市长江大桥").matched
    assert verdict(rule(terms=("市长",), boundary="none"), "南京市长江大桥").matched
    assert verdict(rule(terms=("爆炸",)), "化工厂发生爆炸").matched  # inside a compound: counts
    token = rule(terms=("服务",), boundary="token")
    assert not verdict(token, "服务员态度差").matched
    assert verdict(token, "政务服务很差").matched
    v = verdict(token, "服务员态度差")
    assert v.rejected[0].reason == "非完整词"
    mixed = rule(terms=(TermEntry(term="服务", boundary="token"), "投诉"))
    assert verdict(mixed, "投诉服务员").terms == ["投诉"]


def test_aliases_report_their_term():
    spec = rule(terms=(TermEntry(term="黑臭", aliases=("发黑发臭", "又黑又臭")),))
    v = verdict(spec, "河水又黑又臭")
    assert v.matched and v.terms == ["黑臭"] and v.hits[0].matched == "又黑又臭"


def test_normalization_traditional_fullwidth_case_invisible():
    spec = rule(terms=("发黑发臭", "px项目"))
    assert verdict(spec, "這條河道發黑發臭").matched
    assert verdict(spec, "反对ＰＸ項目").terms == ["px项目"]
    text = "河道发\u200d黑发\ufeff臭"  # zero-width joiner and BOM inside, as in real Weibo text
    v = verdict(spec, text)
    assert v.matched and (v.hits[0].start, v.hits[0].end) == (2, 8) and v.hits[0].matched == "发\u200d黑发\ufeff臭"
    norm, positions = normalize_map("a  \u200bb\t\tc")
    assert norm == "a b\tc"  # runs of white space collapse to their first character
    assert original_span(positions, 2, 3) == (4, 5)


def test_terms_with_a_middle_dot():
    """jieba always cuts at '·' and '-': those cuts inside a term are not held against it."""
    spec = rule(terms=("乌鲁木齐·米东",))
    assert verdict(spec, "乌鲁木齐·米东发生火灾").matched
    # A known limit of natural frequencies: in 米东区 jieba prefers 米 | 东区, so "word" rejects
    # the occurrence. `monitor rules check` warns about such terms; boundary = "none" takes them.
    assert verdict(spec, "乌鲁木齐·米东区发生火灾").rejected[0].reason == "跨词"
    assert verdict(rule(terms=("乌鲁木齐·米东",), boundary="none"), "乌鲁木齐·米东区发生火灾").matched


def test_explanation_carries_positions_and_checks():
    spec = rule(all=(("河",),), none=("尾气",))
    v = verdict(spec, "这条河黑臭")
    e = v.explanation()
    assert e["hits"] == [{"term": "黑臭", "text": "黑臭", "field": "title", "start": 3, "end": 5}]
    assert e["checks"] == ["排除词均未出现：尾气", "同时出现「河」（河 之一）"]


def test_rule_file_keys_and_errors(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('''
[[rule]]
name = "黑臭水体"
terms = ["黑臭", { term = "发黑发臭", aliases = ["又黑又臭"] }]
all = [["河", "水体", "河道", "内河"]]
none = ["尾气", "垃圾桶"]
none_phrases = ["尾气黑臭"]
near = [{ a = "黑臭", b = "河", within = 20 }]
boundary = "word"
min_count = 1
fields = ["title", "body"]
severity = "一般"
category = "环境保护"
department = "生态环境局"
region = "福州"
tags = ["环保"]
''', encoding="utf-8")
    [r] = load_rules([path])
    assert r.region == "福州" and r.near[0].within == 20 and r.terms[1].aliases == ["又黑又臭"]
    path.write_text('[[rule]]\nname = "x"\nterms = ["a"]\nseverity = "一般"\nboundary = "words"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_rules([path])
    assert e.value.problems[0].startswith(f"{path}:5: rule[1].boundary")


# ---- the CLI -------------------------------------------------------------------------------


def test_rules_test_cli(tmp_path, capsys):
    from monitor.cli import main

    from .conftest import write_config

    cfg = write_config(tmp_path / "cfg")
    assert main(["rules", "test", "--config", str(cfg), "南京市长江大桥附近化工厂发生爆炸"]) == 0
    out = capsys.readouterr().out
    assert "正文分词：南京市 / 长江大桥 / 附近 / 化工厂 / 发生爆炸" in out
    assert "【危化品爆炸】✔ 命中" in out and "关键词「爆炸」：正文第 15–16 字" in out
    assert "【黑臭水体】✘ 不命中" in out and "关键词未出现" in out
    assert main(["rules", "test", "--config", str(cfg), "今天天气很好"]) == 1


def test_rules_check_cli(tmp_path, capsys):
    from monitor.cli import main

    from .conftest import write_config

    cfg = write_config(tmp_path / "cfg")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.toml").write_text('[[rule]]\nname = "a"\nterms = ["乌鲁木齐·米东区", "河"]\nseverity = "一般"\n', encoding="utf-8")
    (rules / "b.toml").write_text('[[rule]]\nname = "b"\nterms = ["河"]\nseverity = "一般"\n', encoding="utf-8")
    assert main(["rules", "check", "--config", str(cfg), "--rules", str(rules)]) == 0
    out = capsys.readouterr().out
    assert "规则有效：2 条，来自 2 个文件" in out
    assert "单字词「河」" in out and "「河」同时出现在规则「a」和「b」中" in out
    (rules / "b.toml").write_text('[[rule]]\nname = "b"\nterms = []\nseverity = "一般"\n', encoding="utf-8")
    assert main(["rules", "check", "--config", str(cfg), "--rules", str(rules)]) == 2
    assert f"{rules / 'b.toml'}:3: rule[1].terms" in capsys.readouterr().err


def test_rules_dry_run_compares_with_what_was_matched(tmp_path, capsys):
    from monitor.cli import main

    from .conftest import write_config
    from .test_replay import POSTS, write_jsonl

    cfg = write_config(tmp_path / "cfg")
    url = f"sqlite:///{tmp_path / 'h.db'}"
    recent = [dict(p, published_at=p["published_at"].replace("2026-11-20", "2026-11-21")) for p in POSTS]
    posts = write_jsonl(tmp_path / "p.jsonl", recent)
    assert main(["replay", "--config", str(cfg), "--posts", str(posts), "--dry-run", "--database", url, "--out", str(tmp_path / "r.json")]) == 0
    new = tmp_path / "new.toml"
    new.write_text('[[rule]]\nname = "危化品爆炸"\nterms = ["爆炸"]\nseverity = "重大"\n\n'
                   '[[rule]]\nname = "交通拥堵"\nterms = ["堵车"]\nseverity = "一般"\n', encoding="utf-8")
    capsys.readouterr()
    assert main(["rules", "dry-run", "--since", "3650d", "--rules", str(new), "--config", str(cfg), "--database", url]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line and not line.startswith((" ", "试运行", "规则"))}
    assert lines["危化品爆炸"] == ["2", "1", "-1"]  # 爆燃 is no longer a term
    assert lines["交通拥堵"] == ["0", "1", "+1"]
    assert "+ 南京市长江大桥堵车" in out and "− " in out
