"""Building the parts from a Config: one place that wires, no place that knows everything."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor import secrets
from monitor.alerts.channels import ChannelError, Channels, check_file, shown
from monitor.alerts.roster import person_tag
from monitor.clock import SHANGHAI, Clock
from monitor.config import Config, ConfigError, WatchRule
from monitor.incidents.service import Alerting, Incidents
from monitor.matching.matcher import Matcher
from monitor.pipeline import Pipeline
from monitor.store import db


@dataclass
class App:
    cfg: Config
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Clock
    incidents: Incidents
    pipeline: Pipeline
    channels: Channels | None


def make_matcher(cfg: Config, rules: list[WatchRule]) -> Matcher:
    return Matcher(rules, cache_dir=cfg.state_dir / "jieba", max_chars=cfg.main.matching.max_chars)


def load_channels(cfg: Config) -> Channels:
    """apprise targets, checked against the tiers: a tier nobody receives is a config error."""
    problems = check_file(cfg.apprise_path) if cfg.apprise_path.is_file() else []
    try:
        lines = cfg.path.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []

    def at(name: str) -> str:
        """monitor.toml:line where a quoted name (a tag, a person) is written."""
        number = next((n for n, line in enumerate(lines, start=1) if f'"{name}"' in line.split("#", 1)[0]), None)
        return f"{cfg.path}:{number}" if number else str(cfg.path)

    try:
        channels = Channels.from_file(cfg.apprise_path)
    except ChannelError as e:
        raise ConfigError([*problems, str(e)]) from None
    for person in cfg.main.person:
        for url in person.urls:
            expanded = os.path.expandvars(url)
            secrets.register_url(expanded)
            if not channels.add(expanded, person_tag(person.name)):
                problems.append(f"{at(person.name)}: [[person]] 「{person.name}」的 urls 中有无法识别的 apprise 地址：{shown(expanded)}")
        for tag in person.tags:
            if not channels.targets(tag):
                problems.append(f"{at(tag)}: [[person]] 「{person.name}」的标签 {tag} 在 {cfg.apprise_path} 中没有任何告警地址")
        if not person.tags and not person.urls:
            problems.append(f"{at(person.name)}: [[person]] 「{person.name}」既没有 tags 也没有 urls：告警无处可发")
    problems += [
        f"{at(tag)}: [[tier]] 「{tier.name}」的标签 {tag} 在 {cfg.apprise_path} 中没有任何告警地址"
        for tier in cfg.main.tier
        for tag in tier.tags
        if not channels.targets(tag)
    ]
    for tag in cfg.main.alerts.fallback_tags:
        if not channels.targets(tag):
            problems.append(f"{at(tag)}: [alerts] fallback_tags 中的标签 {tag} 在 {cfg.apprise_path} 中没有任何告警地址")
    for tag in cfg.main.health.tags:
        if not channels.targets(tag):
            problems.append(f"{at(tag)}: [health] 标签 {tag} 在 {cfg.apprise_path} 中没有任何告警地址")
    if cfg.main.report.enabled and not any(channels.targets(tag) for tag in cfg.main.report.tags):
        problems.append(
            f"{cfg.path}: [report] tags {cfg.main.report.tags} 在 {cfg.apprise_path} 中没有任何告警地址（周报无处发送；不需要可设 enabled = false）"
        )
    if problems:
        raise ConfigError(problems)
    channels.bound(cfg.main.alerts.send_timeout.total_seconds())
    return channels


def build(
    cfg: Config,
    clock: Clock,
    *,
    database_url: str | None = None,
    with_channels: bool = True,
    dry_run: bool = False,
) -> App:
    engine = db.make_engine(database_url or cfg.database_url(), cfg.main.database.busy_timeout.total_seconds())
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    channels = load_channels(cfg) if with_channels and not dry_run else None
    incidents = Incidents(cfg.main, Alerting(channels, dry_run))
    matcher = make_matcher(cfg, cfg.rules)
    pipeline = Pipeline(sessions, matcher, incidents, clock, max_attempts=cfg.main.matching.max_attempts)
    return App(cfg, engine, sessions, clock, incidents, pipeline, channels)


class BeijingFormatter(logging.Formatter):
    """Log times as a person reads them: Beijing time, with the zone written out."""

    def formatTime(self, record, datefmt=None):
        at = datetime.fromtimestamp(record.created, SHANGHAI)
        return f"{at:%Y-%m-%d %H:%M:%S},{int(record.msecs):03d} +08:00"


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(BeijingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(secrets.RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler", "apprise", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
