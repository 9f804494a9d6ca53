"""The main file (`monitor.toml`) as a whole, and its cross-table checks."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from monitor.config.alerting import AlertsConfig, DEFAULT_TIERS, EscalationConfig, Person, Shift, TemplateTexts, Tier
from monitor.config.base import Duration, MaybeDuration, _Model, repeated
from monitor.config.incidents import CalendarConfig, ClockRule, DEFAULT_CLOCKS, HeatRule, IncidentConfig, MatchingConfig
from monitor.config.sources import HealthConfig, HttpConfig, SourceConfig
from monitor.config.web import MetricsConfig, WebConfig
from monitor.severity import SEVERITIES


class DatabaseConfig(_Model):
    url: str | None = None
    url_env: str | None = None
    url_file: str | None = None
    # A database that stays unavailable, locked or full this long raises one ops alert,
    # sent when it can be recorded again (the log says it at once either way).
    alert_after: Duration = timedelta(minutes=5)
    # SQLite: how long a statement waits for another writer before "database is locked".
    busy_timeout: Duration = timedelta(seconds=30)


class DaemonConfig(_Model):
    state_dir: str | None = None
    poll_check: Duration = timedelta(seconds=5)
    workers: int = Field(4, ge=1, le=32)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # An instance holds a source while polling it: instances on one PostgreSQL never poll the
    # same source at once, and a killed one's sources pass to the others after this long.
    lease: Duration = timedelta(minutes=2)


class ReportConfig(_Model):
    """The reports (周报, and 月报/季报/年报 where scheduled), made and sent by the daemon on cron schedules."""

    enabled: bool = True
    cron: str = "0 9 * * 1"  # the weekly report: minute hour day month weekday, Beijing time: Monday 09:00
    monthly_cron: str = ""  # "" = not scheduled; e.g. "0 9 1 * *"
    quarterly_cron: str = ""  # e.g. "0 9 1 1,4,7,10 *"
    annual_cron: str = ""  # e.g. "0 9 2 1 *"
    # the clocks whose first completion is an incident's first authoritative answer (考核)
    answer_clocks: list[str] = ["发布权威信息", "权威回应", "依申请公开答复"]
    board_working_days: list[Annotated[int, Field(ge=1, le=60)]] = [3, 5, 15]  # 留言 answered within N working days
    formats: list[Literal["xlsx", "docx", "html", "csv"]] = ["xlsx", "docx"]
    tags: list[str] = ["lead", "leader"]
    out_dir: str | None = None  # default: <state_dir>/reports
    retry_base: Duration = timedelta(minutes=5)
    give_up_after: Duration = timedelta(hours=12)


    @field_validator("cron", "monthly_cron", "quarterly_cron", "annual_cron")
    @classmethod
    def _cron(cls, v: str, info) -> str:
        from monitor.cron import check

        if not v and info.field_name != "cron":
            return v
        try:
            check(v)
        except ValueError as e:
            raise ValueError(f"无法识别的 cron 表达式 {v!r}（应为 分 时 日 月 周，如 \"0 9 * * 1\"）：{e}") from None
        return v

    def schedules(self) -> dict[str, str]:
        """Report kind → cron, for the kinds that are scheduled."""
        crons = {"weekly": self.cron, "monthly": self.monthly_cron, "quarterly": self.quarterly_cron, "annual": self.annual_cron}
        return {kind: cron for kind, cron in crons.items() if cron}


class RetentionConfig(_Model):
    """`[retention]`: posts older than `posts` are pruned, except those an incident holds."""

    posts: MaybeDuration = None  # absent: kept for ever
    every: Duration = timedelta(hours=1)

    @field_validator("posts")
    @classmethod
    def _at_least_a_day(cls, v):
        if v is not None and v < timedelta(days=1):
            raise ValueError("posts 至少为 1 天（如 \"180d\"）：更短的保留期会让仍在列表中的条目被当作新帖再次收录")
        return v


class DemoConfig(_Model):
    """The bundled demo serves its own feed and alert receiver on loopback."""

    port: int = Field(8765, ge=1, le=65535)
    posts: str = "demo-posts.json"
    alerts_log: str = "demo-alerts.log"


class MainConfig(_Model):
    watchwords: str | list[str] = "watchwords.toml"
    # More [[source]] tables in files of their own (e.g. from `monitor sources import-opml`).
    source_files: list[str] = []
    database: DatabaseConfig = DatabaseConfig()
    daemon: DaemonConfig = DaemonConfig()
    http: HttpConfig = HttpConfig()
    matching: MatchingConfig = MatchingConfig()
    source: list[SourceConfig] = []
    clock: list[ClockRule] = list(DEFAULT_CLOCKS)
    # [[clock]] tables add to the official three (a table with an official name replaces that
    # one, e.g. to exclude a category); true: the [[clock]] tables are the whole table.
    replace_default_clocks: bool = False
    tier: list[Tier] = list(DEFAULT_TIERS)
    escalation: EscalationConfig = EscalationConfig()
    incidents: IncidentConfig = IncidentConfig()
    alerts: AlertsConfig = AlertsConfig()
    report: ReportConfig = ReportConfig()
    health: HealthConfig = HealthConfig()
    calendar: CalendarConfig = CalendarConfig()
    heat: list[HeatRule] = []
    person: list[Person] = []
    shift: list[Shift] = []
    templates: dict[Literal["opened", "reminder", "escalation", "unacked"], TemplateTexts] = {}
    demo: DemoConfig | None = None
    web: WebConfig | None = None  # the duty console; absent: no console
    retention: RetentionConfig = RetentionConfig()
    metrics: MetricsConfig | None = None  # Prometheus metrics and health; absent: none served

    def official_sources(self) -> set[str]:
        """The names of the office's own channels: their posts answer incidents, never open them."""
        return {s.name for s in self.source if s.official}

    @property
    def ops_tags(self) -> tuple[str, ...]:
        """Who hears about the system itself (sources, channels, the database)."""
        return tuple(self.health.tags or self.tier[0].tags)

    def template_overrides(self) -> dict[str, dict[str, str]]:
        return {kind: {k: v for k, v in t.model_dump().items() if v is not None} for kind, t in self.templates.items()}

    @model_validator(mode="before")
    @classmethod
    def _clocks_add(cls, data: Any) -> Any:
        """[[clock]] tables add to the official three; one named like an official one takes its place."""
        if isinstance(data, dict) and isinstance(data.get("clock"), list) and not data.get("replace_default_clocks"):
            own = list(data["clock"])
            name = lambda c: c.get("name") if isinstance(c, dict) else getattr(c, "name", None)  # noqa: E731
            by_name = {name(c): c for c in own}
            official = [by_name.get(c.name, c) for c in DEFAULT_CLOCKS]
            data = {**data, "clock": official + [c for c in own if name(c) not in {d.name for d in DEFAULT_CLOCKS}]}
        return data

    @model_validator(mode="after")
    def _unique_names(self) -> MainConfig:
        for what, items in (("source", self.source), ("clock", self.clock), ("tier", self.tier)):
            for name in repeated(item.name for item in items)[:1]:
                raise ValueError(f"[[{what}]] 名称重复：{name}")
        from monitor.alerts.templates import compile_templates

        compile_templates(self.template_overrides())  # a template error stops the start, with its name
        tiers = {t.name for t in self.tier}
        people = {p.name for p in self.person}
        for shift in self.shift:
            if shift.tier not in tiers:
                raise ValueError(f"[[shift]] {shift.name or shift.tier}：tier「{shift.tier}」不在 [[tier]] 中（现有：{'、'.join(tiers)}）")
            unknown = [p for p in shift.people if p not in people]
            if unknown:
                raise ValueError(f"[[shift]] {shift.name or shift.tier}：未在 [[person]] 中定义的人员：{'、'.join(unknown)}")
        for severity, policy in self.escalation.severity.items():
            if policy.first_tier and policy.first_tier not in tiers:
                raise ValueError(f"[escalation.severity.{severity}] first_tier「{policy.first_tier}」不在 [[tier]] 中")
        if self.incidents.reply_meets and self.incidents.reply_meets not in {c.name for c in self.clock}:
            raise ValueError(f"[incidents] reply_meets = {self.incidents.reply_meets!r} 不是 [[clock]] 中的时限名称")
        covered = {s for c in self.clock if c.general for s in c.severities}
        missing = [s for s in SEVERITIES if s not in covered]
        if missing:
            raise ValueError(f"[[clock]] 未覆盖以下级别：{'、'.join(missing)}（每个级别至少要有一个回应时限）")
        if not self.tier:
            raise ValueError("至少需要一个 [[tier]]（值班梯队）")
        return self
