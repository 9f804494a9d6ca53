"""What changed between two configurations, for a reload: which files to watch, whether they
changed on disk, what cannot change under a running daemon, and what did, in words."""

from __future__ import annotations

from pathlib import Path

from monitor.config.base import ConfigError
from monitor.config.loading import Config, rule_files


def signature(cfg: Config) -> tuple:
    """The files a reload reads (monitor.toml, apprise.yml, the rule files), by time and size."""
    out = []
    for path in [cfg.path, cfg.apprise_path, *rule_files(cfg)]:
        try:
            st = path.stat()
            out.append((str(path), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(path), None, None))
    return tuple(out)


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


# What a reload cannot change under a running daemon: the database, the worker pool, the demo.
_FROZEN = {"数据库地址": lambda c: c.database_url(), "轮询线程数（[daemon] workers）": lambda c: c.main.daemon.workers,
           "状态目录": lambda c: c.state_dir, "演示（[demo]）": lambda c: c.main.demo, "周报开关": lambda c: c.main.report.enabled,
           "日志级别": lambda c: c.main.daemon.log_level,
           # permissions and limits apply at once; where it listens and what links and cookies are signed with do not
           "值班台地址与签名（[web] enabled、listen、base_url、link_ttl、session_ttl、secure_cookies、secret_file）": lambda c: (
               None if c.main.web is None else c.main.web.model_dump(include={"enabled", "listen", "base_url", "link_ttl", "session_ttl",
                                                                              "secure_cookies", "secret_file"}))}

# Sections of monitor.toml a person names when saying what changed, in the order they read them.
_SECTIONS = (("值班人员", "person"), ("班次", "shift"), ("值班梯队", "tier"), ("升级策略", "escalation"), ("回应时限", "clock"),
             ("告警设置", "alerts"), ("模板", "templates"), ("事件归并", "incidents"), ("热度", "heat"), ("匹配", "matching"),
             ("来源健康", "health"), ("周报", "report"), ("抓取", "http"), ("节假日", "calendar"), ("值班台", "web"))


def needs_restart(old: Config, new: Config) -> list[str]:
    out = []
    for name, get in _FROZEN.items():
        try:
            if get(old) != get(new):
                out.append(name)
        except ConfigError:
            out.append(name)
    return out


def by_name(before: list, after: list) -> tuple[list[str], list[str], list[str]]:
    """Names added, removed and changed between two lists of named items (sources, rules)."""
    a, b = {x.name: x for x in before}, {x.name: x for x in after}
    return sorted(set(b) - set(a)), sorted(set(a) - set(b)), sorted(n for n in set(a) & set(b) if a[n] != b[n])


def describe_changes(old: Config, new: Config) -> list[str]:
    """What a reload changed, in words: sources and rules by name, other sections by name."""
    out = []
    for label, a, b in (("来源", old.main.source, new.main.source), ("规则", old.rules, new.rules)):
        parts = [f"{verb} {'、'.join(names)}" for verb, names in zip(("新增", "删除", "修改"), by_name(a, b)) if names]
        if parts:
            out.append(f"{label}{'，'.join(parts)}")
    sections = [label for label, key in _SECTIONS if getattr(old.main, key, None) != getattr(new.main, key, None)]
    if sections:
        out.append("已更新：" + "、".join(sections))
    return out
