"""The rule language of issue 13, written in TOML as an office would, loaded and matched:
per-term conditions, per-field counts, weights and a score, groups, variant characters,
separators between a term's characters, and what `rules check` says."""

import subprocess
import sys

from monitor.config import load_rules
from monitor.matching.matcher import Matcher

RULES = """
[[rule]]
name = "商品质量"
terms = [{ term = "质量", near = ["商品", "产品"], within = 10 }, "旅游"]
severity = "一般"

[[rule]]
name = "噪音"
terms = ["噪音"]
min_count = { title = 1, body = 2 }
severity = "一般"

[[rule]]
name = "医疗纠纷"
terms = [{ term = "医疗事故", weight = 3 }, { term = "医院", weight = 1 }]
score = 3
severity = "较大"

[[rule]]
name = "物业纠纷"
group = "小区"
terms = ["物业"]
severity = "一般"

[[rule]]
name = "小区治安"
group = "小区"
terms = ["小区", "物业"]
severity = "一般"

[[rule]]
name = "征地拆迁"
terms = ["拆迁", "采石场"]
gaps = true
severity = "较大"

[[rule]]
name = "扰民"
terms = [{ term = "扰民", aliases = ["擾民"] }]
severity = "一般"
"""


def matcher(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(RULES, encoding="utf-8")
    return Matcher(load_rules([path]))


def matched(m, title, body=""):
    return [v.rule.name for v in m.match(title, body)]


def test_a_term_that_counts_only_near_given_words_beside_one_that_counts_alone(tmp_path):
    m = matcher(tmp_path)
    assert matched(m, "买的产品质量太差") == ["商品质量"]
    assert matched(m, "教学质量有待提高") == []
    v = next(v for v in m.evaluate("教学质量有待提高", "", every_rule=True) if v.rule.name == "商品质量")
    assert any("10 字内没有「商品/产品」" in r.reason for r in v.rejected)
    assert matched(m, "周末去旅游") == ["商品质量"]


def test_per_field_counts_one_in_the_title_or_two_in_the_body(tmp_path):
    m = matcher(tmp_path)
    assert matched(m, "噪音") == ["噪音"]
    assert matched(m, "", "楼下噪音，晚上也有噪音") == ["噪音"]
    assert matched(m, "", "楼下有噪音") == []


def test_weights_and_a_score(tmp_path):
    m = matcher(tmp_path)
    assert matched(m, "疑似医疗事故") == ["医疗纠纷"]
    assert matched(m, "医院排队太久") == []  # 医院 weighs 1, the rule needs 3
    assert matched(m, "医院医院医院") == ["医疗纠纷"]


def test_a_group_gives_the_post_to_its_first_matching_rule(tmp_path):
    m = matcher(tmp_path)
    assert matched(m, "小区物业不作为") == ["物业纠纷"]  # not also 小区治安: no need to copy words into none
    assert matched(m, "小区夜里有人撬车") == ["小区治安"]
    loser = next(v for v in m.evaluate("小区物业不作为", "") if v.rule.name == "小区治安")
    assert not loser.matched and "已匹配：归入该规则" in loser.checks[-1]


def test_variant_characters_and_separators_do_not_defeat_a_term(tmp_path):
    m = matcher(tmp_path)
    assert matched(m, "村里的釆石场炸山") == ["征地拆迁"]  # 釆 (U+91C6) for 采
    for evasion in ("强制拆 迁", "强制拆-迁", "强制拆😡迁", "强制拆\u200b迁", "强制拆，迁"):
        assert matched(m, evasion) == ["征地拆迁"], evasion
    assert matched(m, "拆了又建，迁走的人") == []  # other words between: not the term


def test_an_alias_that_folds_to_its_term_is_one_hit(tmp_path):
    m = matcher(tmp_path)
    [v] = m.match("擾民", "")
    assert len(v.hits) == 1


def test_rules_check_warns_about_cuts_in_real_text_repeats_and_folding_aliases(tmp_path):
    rules = tmp_path / "r.toml"
    rules.write_text('[[rule]]\nname = "群租"\nterms = ["群租", "群租", { term = "扰民", aliases = ["擾民"] }]\nseverity = "一般"\n',
                     encoding="utf-8")
    sample = tmp_path / "sample.txt"
    sample.write_text("小区里有人搞群租房，人员复杂\n", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "monitor", "rules", "check", "--rules", str(rules), "--sample", str(sample),
                          "--config", "config/demo.toml"], capture_output=True, text=True, timeout=120).stdout
    assert "「群租」的 terms 中「群租」重复出现" in out
    assert "别名「擾民」与词条「扰民」归一后相同" in out
    assert "「群租」的「群租」在样本中有 1 处被 jieba 切开而不算（如「里有人搞群租房，人员」）" in out
