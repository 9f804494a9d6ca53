"""Reading the files: TOML, validation, errors that name file, line and key, rule files,
source files, relative paths and the database URL."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from monitor import secrets
from monitor.config.base import ConfigError, repeated
from monitor.config.locate import key_lines, locate
from monitor.config.main import MainConfig
from monitor.config.rules import RuleFile, WatchRule
from monitor.config.sources import SourceConfig, SourceFile


class Config:
    """The validated configuration plus where it came from."""

    def __init__(self, path: Path, main: MainConfig, rules: list[WatchRule]):
        self.path = path
        self.main = main
        self.rules = rules
        self.rule_paths: list[Path] = []

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, value: str) -> Path:
        p = Path(os.path.expandvars(value)).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    @property
    def state_dir(self) -> Path:
        configured = self.main.daemon.state_dir
        if configured:
            return self.resolve(configured)
        # systemd's StateDirectory= sets STATE_DIRECTORY.
        env = os.environ.get("STATE_DIRECTORY") or os.environ.get("MONITOR_STATE_DIR")
        return Path(env.split(":")[0]) if env else (Path.cwd() / "monitor-state")

    def database_url(self) -> str:
        return resolve_database_url(self)

    @property
    def apprise_path(self) -> Path:
        override = os.environ.get("MONITOR_APPRISE_CONFIG")
        return self.resolve(override or self.main.alerts.apprise_config)


def resolve_database_url(cfg: Config) -> str:
    """Environment first, then file, then the config value, then SQLite in the state dir."""
    db = cfg.main.database
    url = os.environ.get("MONITOR_DATABASE_URL")
    if not url and db.url_env:
        url = os.environ.get(db.url_env)
        if not url:
            raise ConfigError([f"{cfg.path}: [database] url_env：环境变量 {db.url_env} 未设置"])
    if not url and db.url_file:
        path = cfg.resolve(db.url_file)
        try:
            url = path.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError([f"{cfg.path}: [database] url_file：无法读取 {path}（{e.strerror}）"]) from None
    if not url:
        url = db.url or f"sqlite:///{cfg.state_dir / 'monitor.db'}"
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url[len("sqlite:///"):]
        if relative and not relative.startswith(":"):
            url = f"sqlite:///{cfg.resolve(relative)}"
    secrets.register_url(url, user_is_secret=False)
    return url


_MESSAGES = {
    "missing": "缺少必填项",
    "extra_forbidden": "未知的配置项（拼写错误？）",
    "string_type": "应为字符串",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "float_type": "应为数字",
    "float_parsing": "应为数字",
    "bool_type": "应为 true 或 false",
    "bool_parsing": "应为 true 或 false",
    "list_type": "应为列表，如 [\"a\", \"b\"]",
    "too_short": "不能为空",
    "string_too_short": "不能为空",
    "greater_than": "数值过小",
    "greater_than_equal": "数值过小",
    "less_than_equal": "数值过大",
    "model_type": "应为表（table）",
}


def _message(err: dict) -> str:
    kind = err["type"]
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"取值 {err.get('input')!r} 无效，应为 {expected.replace(' or ', ' | ')}"
    if kind == "value_error":
        return str(err.get("ctx", {}).get("error", err["msg"]))
    if kind in ("greater_than", "greater_than_equal", "less_than_equal", "less_than"):
        limit = next(iter(err.get("ctx", {}).values()), "")
        op = {"greater_than": ">", "greater_than_equal": "≥", "less_than_equal": "≤", "less_than": "<"}[kind]
        return f"取值 {err.get('input')!r} 无效，应 {op} {limit}"
    return _MESSAGES.get(kind, err["msg"])


def _format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _load_toml(path: Path) -> tuple[dict, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: 文件不存在"]) from None
    except UnicodeDecodeError as e:
        raise ConfigError([f"{path}: 不是 UTF-8 编码的文本（第 {e.start} 字节）"]) from None
    except OSError as e:
        raise ConfigError([f"{path}: 无法读取（{e.strerror}）"]) from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([_syntax_error(path, text, str(e))]) from None


def _syntax_error(path: Path, text: str, message: str) -> str:
    """tomllib says "Invalid value (at line 3, column 5)"; we say path:3: … （第 5 列）."""
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if m:
        return f"{path}:{m.group(1)}: TOML 语法错误：{message[: m.start()]}（第 {m.group(2)} 列）"
    if message.endswith("(at end of document)"):
        last = len(text.splitlines()) or 1
        return f"{path}:{last}: TOML 语法错误：{message.removesuffix(' (at end of document)')}（文件末尾）"
    return f"{path}: TOML 语法错误：{message}"


def _validate(model: type[BaseModel], path: Path, data: dict, text: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        lines = key_lines(text)
        problems = []
        for err in e.errors():
            loc = tuple(err["loc"])
            line = locate(lines, loc) or _line_naming(text, _message(err))
            where = f"{path}:{line}" if line else str(path)
            key = _format_loc(loc)
            problems.append(f"{where}: {key + '：' if key else ''}{_message(err)}")
        raise ConfigError(problems) from None


def _line_naming(text: str, message: str) -> int | None:
    """A check across tables (a duplicate name, a person a shift names but nobody defines) has
    no key of its own: the line where a name the message quotes is written as a TOML string,
    the last name first (「夜班」…：张三 is about 张三)."""
    table = re.match(r"\[(templates\.\w+)\]", message)
    if table:
        header = f"[{table.group(1)}]"
        return next((n for n, line in enumerate(text.splitlines(), start=1) if line.strip() == header), None)
    names = re.findall(r"「([^」]+)」", message)
    tail = message.rsplit("：", 1)[-1] if "：" in message else ""
    names += [n.strip() for n in re.split(r"[、，,]", tail) if n.strip() and len(n.strip()) <= 40]
    lines = list(enumerate(text.splitlines(), start=1))
    if "重复" in message:
        lines.reverse()  # the second of two is the one to fix
    for name in reversed(names):
        needle = f'"{name}"'
        for number, line in lines:
            if needle in line.split("#", 1)[0]:
                return number
    return None


def expand_rule_paths(paths: list[Path]) -> list[Path]:
    """Rules may be split across files, or live in a directory of *.toml files."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(path.glob("*.toml")))
        else:
            out.append(path)
    return out


def rule_files(cfg: Config) -> list[Path]:
    """The rule files monitor.toml names (`watchwords`), a directory read as its *.toml files as
    they are now: a reload finds a file added to it."""
    names = cfg.main.watchwords if isinstance(cfg.main.watchwords, list) else [cfg.main.watchwords]
    return expand_rule_paths([cfg.resolve(n) for n in names])


def load_rules(paths: list[Path]) -> list[WatchRule]:
    rules: list[WatchRule] = []
    problems: list[str] = []
    for path in paths:
        try:
            data, text = _load_toml(path)
            rules.extend(_validate(RuleFile, path, data, text).rule)
        except ConfigError as e:
            problems.extend(e.problems)
    dupes = sorted(repeated(r.name for r in rules))
    if dupes:
        problems.append(f"规则名称在多个文件中重复：{'、'.join(dupes)}")
    if problems:
        raise ConfigError(problems)
    return rules


def load(path: str | Path, watchwords: str | Path | None = None) -> Config:
    path = Path(path).resolve()
    data, text = _load_toml(path)
    main = _validate(MainConfig, path, data, text)
    cfg = Config(path, main, [])
    if main.source_files:
        extra: list[SourceConfig] = []
        problems: list[str] = []
        for name in main.source_files:
            source_path = cfg.resolve(name)
            try:
                source_data, source_text = _load_toml(source_path)
                extra.extend(_validate(SourceFile, source_path, source_data, source_text).source)
            except ConfigError as e:
                problems.extend(e.problems)
        if problems:
            raise ConfigError(problems)
        dupes = sorted(repeated(s.name for s in [*main.source, *extra]))
        if dupes:
            raise ConfigError([f"{path}: 来源名称重复（含 source_files）：{'、'.join(dupes)}"])
        cfg.main = main = main.model_copy(update={"source": [*main.source, *extra]})
    rule_paths = expand_rule_paths([Path(watchwords).resolve()]) if watchwords is not None else rule_files(cfg)
    cfg.rule_paths = rule_paths
    cfg.rules = load_rules(rule_paths)
    if not cfg.rules:
        raise ConfigError([f"{', '.join(map(str, rule_paths))}: 没有任何 [[rule]]，无法匹配舆情"])
    return cfg
