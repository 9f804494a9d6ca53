from pathlib import Path

import pytest

from monitor import config
from monitor.clock import parse_iso
from monitor.cli import main
from monitor.config import ConfigError

from .conftest import REPO, write_config


def test_bundled_configs_are_valid():
    for name in ("monitor.toml", "demo.toml"):
        cfg = config.load(REPO / "config" / name)
        assert [c.name for c in cfg.main.clock][:3] == ["发布权威信息", "召开新闻发布会", "权威回应"]
        assert cfg.rules


def test_defaults_are_the_published_rules(tmp_path):
    path = write_config(tmp_path)
    cfg = config.load(path)
    clocks = {c.name: (c.within.total_seconds() / 3600, tuple(c.severities)) for c in cfg.main.clock}
    assert clocks == {
        "发布权威信息": (5, ("特别重大", "重大")),
        "召开新闻发布会": (24, ("特别重大", "重大")),
        "权威回应": (48, ("较大", "一般")),
    }


def test_contract_rule_shape(tmp_path):
    cfg = config.load(write_config(tmp_path))
    rule = cfg.rules[0]
    assert (rule.name, rule.terms, rule.severity, rule.category, rule.department) == (
        "危化品爆炸", ["爆炸", "爆燃"], "重大", "安全生产", "应急管理局",
    )


def _problems(path: Path, watchwords=None) -> list[str]:
    with pytest.raises(ConfigError) as e:
        config.load(path, watchwords)
    return e.value.problems


def test_bad_severity_names_file_line_and_expected_values(tmp_path):
    words = '[[rule]]\nname = "a"\nterms = ["爆炸"]\nseverity = "重大"\n\n[[rule]]\nname = "b"\nterms = ["x"]\nseverity = "严重"\n'
    path = write_config(tmp_path, watchwords=words)
    [problem] = _problems(path)
    assert problem.startswith(f"{tmp_path / 'watchwords.toml'}:9: rule[2].severity")
    assert "特别重大" in problem and "一般" in problem


def test_unknown_key_and_bad_duration_are_located(tmp_path):
    path = write_config(tmp_path, extra='[escalation]\nrepeat_evry = "2h"\n[incidents]\nwindow = "soon"\n')
    problems = _problems(path)
    text = path.read_text().splitlines()
    by_key = {p.split(": ")[1].split("：")[0]: p for p in problems}
    unknown = by_key["escalation.repeat_evry"]
    assert "未知的配置项" in unknown
    line = int(unknown.split(":")[1])
    assert text[line - 1].startswith("repeat_evry")
    window = by_key["incidents.window"]
    assert "无法识别的时长" in window and text[int(window.split(":")[1]) - 1].startswith("window")


def test_missing_field_in_second_source_is_located(tmp_path):
    path = write_config(tmp_path, sources=[("a", "http://127.0.0.1/a")], extra='[[source]]\nname = "b"\n')
    [problem] = _problems(path)
    assert "source[2].url" in problem and "缺少必填项" in problem
    line = int(problem.split(":")[1])
    assert path.read_text().splitlines()[line - 1] == "[[source]]"


def test_toml_syntax_error_keeps_position(tmp_path):
    path = write_config(tmp_path)
    lines = path.read_text().splitlines()
    lines.insert(3, "broken = = 1")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    [problem] = _problems(path)
    assert problem.startswith(f"{path}:4: TOML 语法错误") and "列" in problem


def test_clock_table_must_cover_every_severity(tmp_path):
    extra = '[[clock]]\nname = "只管重大"\nseverities = ["重大"]\nwithin = "5h"\n'
    path = write_config(tmp_path, extra=extra)
    path.write_text("replace_default_clocks = true\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    [problem] = _problems(path)
    assert "未覆盖" in problem and "一般" in problem


def test_clocks_add_to_the_official_three_and_a_category_can_be_exempted(tmp_path):
    from monitor.incidents.clocks import plan_clocks

    extra = ('[[clock]]\nname = "依申请公开答复"\nseverities = ["一般"]\ncategories = ["依申请公开"]\nworking_days = 20\n'
             '[[clock]]\nname = "权威回应"\nseverities = ["较大", "一般"]\nwithin = "48h"\nexclude_categories = ["依申请公开"]\n')
    cfg = config.load(write_config(tmp_path, extra=extra))
    assert [c.name for c in cfg.main.clock] == ["发布权威信息", "召开新闻发布会", "权威回应", "依申请公开答复"]  # added, not replaced
    start = parse_iso("2026-09-21T09:00:00+08:00")
    assert [p.name for p in plan_clocks("一般", cfg.main.clock, start, "信息公开申请", "依申请公开")] == ["依申请公开答复"]
    assert [p.name for p in plan_clocks("一般", cfg.main.clock, start, "黑臭水体", "环境保护")] == ["权威回应"]
    assert [p.name for p in plan_clocks("重大", cfg.main.clock, start, "危化品爆炸", "安全生产")] == ["发布权威信息", "召开新闻发布会"]


def test_database_url_from_env_file_and_never_printed(tmp_path, monkeypatch, capsys):
    secret_file = tmp_path / "db-url"
    secret_file.write_text("postgresql+psycopg://monitor:s3cretpassw0rd@127.0.0.1:1/none\n")
    path = write_config(tmp_path, extra=f'[database]\nurl_file = "{secret_file}"\n')
    text = path.read_text().replace(f'url = "sqlite:///{tmp_path}/monitor.db"\n', "")
    path.write_text(text)
    cfg = config.load(path)
    assert cfg.database_url().endswith("@127.0.0.1:1/none")
    monkeypatch.setenv("MONITOR_DATABASE_URL", "sqlite:///" + str(tmp_path / "env.db"))
    assert cfg.database_url().endswith("env.db")


def test_check_config_cli(tmp_path, capsys, receiver):
    good = write_config(tmp_path / "good", receiver_url=receiver.url("/hook"))
    assert main(["check-config", "--config", str(good)]) == 0
    assert "配置有效" in capsys.readouterr().out
    bad = write_config(tmp_path / "bad", extra="[http]\ntimeout = -1\n")
    assert main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "配置有误" in err and "http.timeout" in err and f"{bad}:" in err


def test_tier_without_apprise_target_is_an_error(tmp_path, capsys):
    path = write_config(tmp_path, extra='[[tier]]\nname = "值班员"\ntags = ["nobody"]\n')
    assert main(["check-config", "--config", str(path)]) == 2
    line = next(n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if '"nobody"' in text)
    assert f"{path}:{line}: [[tier]] 「值班员」的标签 nobody" in capsys.readouterr().err


def test_check_config_says_what_run_would_refuse_with_file_and_line_and_no_secret(tmp_path, capsys, receiver, monkeypatch):
    # an unset url_env
    monkeypatch.delenv("MONITOR_DATABASE_URL", raising=False)
    monkeypatch.delenv("NO_SUCH_DB_URL", raising=False)
    path = write_config(tmp_path / "a", receiver_url=receiver.url("/hook"), extra='[database]\nurl_env = "NO_SUCH_DB_URL"\n')
    assert main(["check-config", "--config", str(path)]) == 2
    assert "环境变量 NO_SUCH_DB_URL 未设置" in capsys.readouterr().err
    # an apprise line apprise cannot read: named with its line, its token never printed
    path = write_config(tmp_path / "b", receiver_url=receiver.url("/hook"))
    apprise_file = tmp_path / "b" / "apprise.yml"
    apprise_file.write_text(apprise_file.read_text() + "  - jsn://127.0.0.1/Tok3nSecretValue:\n      tag: lead\n", encoding="utf-8")
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{apprise_file}:5: 无法识别的告警地址 jsn://***（未知的协议）" in err and "Tok3nSecretValue" not in err
    # a person's own URL with an unknown scheme: no token either
    path = write_config(tmp_path / "c", receiver_url=receiver.url("/hook"),
                        extra='[[person]]\nname = "李四"\nurls = ["wecom-bot://Sup3rSecretKey99"]\n')
    assert main(["check-config", "--config", str(path)]) == 2
    assert "Sup3rSecretKey99" not in capsys.readouterr().err
    # a shift naming someone nobody defined: the line of the name
    path = write_config(tmp_path / "d", receiver_url=receiver.url("/hook"),
                        extra='[[person]]\nname = "李四"\ntags = ["duty"]\n[[shift]]\nname = "夜班"\ntier = "值班员"\npeople = ["张三"]\n'
                              'start = "17:30"\nend = "08:30"\n')
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    line = next(n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if '"张三"' in text)
    assert f"{path}:{line}: [[shift]] 夜班：未在 [[person]] 中定义的人员：张三" in err
    # a database server that does not answer, with a password in its URL
    path = write_config(tmp_path / "e", receiver_url=receiver.url("/hook"),
                        database_url="postgresql+psycopg://monitor:Passw0rdXyz@127.0.0.1:1/monitor")
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "无法连接数据库" in err and "127.0.0.1:1" in err and "Passw0rdXyz" not in err
    assert main(["check-config", "--offline", "--config", str(path)]) == 0
    assert "未连接检查" in capsys.readouterr().out
