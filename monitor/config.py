"""Configuration: TOML files validated at start, errors that name file, line and key.

Two files by contract: the main config (`config/monitor.toml`) and the watchword rules
(`[[rule]]` tables, in their own file). Relative paths inside a file are relative to that
file's folder. Secrets never live here in clear if the operator does not want them to:
the database URL can come from an environment variable or a file (systemd credentials).
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from monitor import secrets
from monitor.clock import parse_duration
from monitor.config_locate import key_lines, locate
from monitor.severity import SEVERITIES, Severity


class ConfigError(Exception):
    """One or more problems, each already phrased for the person who wrote the file."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_duration(value)


class DatabaseConfig(_Model):
    url: str | None = None
    url_env: str | None = None
    url_file: str | None = None
    # A database that stays unavailable, locked or full this long raises one ops alert,
    # sent when it can be recorded again (the log says it at once either way).
    alert_after: timedelta = timedelta(minutes=5)
    # SQLite: how long a statement waits for another writer before "database is locked".
    busy_timeout: timedelta = timedelta(seconds=30)

    _d = field_validator("alert_after", "busy_timeout", mode="before")(_duration)


class HostPoliteness(_Model):
    concurrency: int | None = Field(None, ge=1)
    delay: timedelta | None = None

    _d = field_validator("delay", mode="before")(_duration)


class HttpConfig(_Model):
    timeout: float = Field(20.0, gt=0)  # seconds for connecting and for each read
    # Seconds for a whole fetch, connect to last byte: a server that drips one byte a second
    # never trips the per-read timeout, and must not hold a worker for the whole run.
    deadline: float = Field(60.0, gt=0)
    # A 429/503 Retry-After pauses that source (and paces its host) for at most this long,
    # whatever the server asks: Retry-After: 9999999999 is not 317 years.
    max_retry_after: timedelta = timedelta(hours=1)
    # Politeness towards each host: requests at once, and time between two request starts.
    host_concurrency: int = Field(2, ge=1)
    host_delay: timedelta = timedelta(seconds=1)
    hosts: dict[str, HostPoliteness] = {}
    max_body_bytes: int = Field(5_000_000, gt=0)
    max_redirects: int = Field(5, ge=0)
    max_connections: int = Field(10, gt=0)
    user_agent: str = "zwyq-monitor/0.1 (public-opinion response monitor)"

    _hd = field_validator("host_delay", "max_retry_after", mode="before")(_duration)

    @field_validator("user_agent")
    @classmethod
    def _ascii(cls, v: str) -> str:
        if not v.isascii():
            raise ValueError("HTTP 头只能包含 ASCII 字符")
        return v


class FieldMap(_Model):
    """Where each post field is in a board item: a dotted path into a JSON item, or a CSS
    selector relative to an HTML item (`::text`, `::attr(name)`; `@name` is the item's own
    attribute). A value with {placeholders} is a template over the JSON item's fields."""

    id: str | None = None
    title: str | None = None
    body: str | None = None
    author: str | None = None
    published: str | None = None
    url: str | None = None
    reply_status: str | None = None
    reply_text: str | None = None
    reply_time: str | None = None


class SourceConfig(_Model):
    name: str = Field(min_length=1)
    type: Literal["feed", "json", "html"] = "feed"
    url: str
    interval: timedelta = timedelta(minutes=10)
    jitter: float = Field(0.1, ge=0, le=0.5)
    max_backoff: timedelta = timedelta(hours=6)
    enabled: bool = True
    # ---- boards (type = "json" | "html") ----
    method: Literal["GET", "POST"] = "GET"
    headers: dict[str, str] = {}
    body: str | None = None  # request body for POST; {page} is replaced
    pages: int = Field(1, ge=1, le=50)  # pagination depth: {page} in url/body
    first_page: int = 1
    page_step: int = Field(1, ge=1)  # Tieba counts pn=0,50,100: first_page = 0, page_step = 50
    items: str | None = None  # JSON: dotted path to the item list ("" = the document); HTML: CSS selector
    fields: FieldMap | None = None
    time_formats: list[str] = []  # strptime formats tried before the built-in ones
    replied: list[str] = ["已办理", "已回复", "已答复", "已办结", "办结", "已处理"]
    detail_body: str | None = None  # CSS selector: fetch each item's page for its body
    quiet_after: timedelta | None = None  # alert when no new item for this long (default: learned)

    _d = field_validator("interval", "max_backoff", "quiet_after", mode="before")(_duration)

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("应为 http:// 或 https:// 开头的地址")
        return v

    @model_validator(mode="after")
    def _board(self) -> "SourceConfig":
        if self.type == "feed":
            return self
        if self.items is None:
            raise ValueError(f"来源「{self.name}」（{self.type}）需要 items：条目列表的{'路径' if self.type == 'json' else ' CSS 选择器'}")
        if self.fields is None or not (self.fields.id or self.fields.url):
            raise ValueError(f"来源「{self.name}」需要 [source.fields] 中的 id 或 url（用于去重）")
        if not (self.fields.title or self.fields.body or self.detail_body):
            raise ValueError(f"来源「{self.name}」需要 fields.title、fields.body 或 detail_body 之一")
        if self.pages > 1 and "{page}" not in self.url and "{page}" not in (self.body or ""):
            raise ValueError(f"来源「{self.name}」pages > 1 时 url 或 body 中需要 {{page}}")
        return self

    def page_url(self, index: int) -> str:
        return self.url.replace("{page}", str(self.first_page + index * self.page_step))

    def page_body(self, index: int) -> str | None:
        return None if self.body is None else self.body.replace("{page}", str(self.first_page + index * self.page_step))


class ClockRule(_Model):
    """One response clock: which incidents start it and how long they have, in wall-clock
    time (within) or in working days on the Chinese holiday calendar (working_days)."""

    name: str = Field(min_length=1)
    severities: list[Severity] = Field(min_length=1)
    within: timedelta | None = None
    working_days: int | None = Field(None, ge=1)
    rules: list[str] = []  # only incidents of these rules (empty: any)
    categories: list[str] = []  # only incidents of these categories (empty: any)
    exclude_rules: list[str] = []  # never incidents of these rules
    exclude_categories: list[str] = []  # never incidents of these categories (依申请公开 has its own clock)

    _d = field_validator("within", mode="before")(lambda cls, v: None if v is None else _duration(v))

    @model_validator(mode="after")
    def _one_measure(self) -> ClockRule:
        if (self.within is None) == (self.working_days is None):
            raise ValueError(f"[[clock]]「{self.name}」需要 within（如 \"48h\"）或 working_days（如 20）之一")
        return self

    @property
    def general(self) -> bool:
        return not self.rules and not self.categories

    def applies(self, severity: str, rule: str = "", category: str = "") -> bool:
        return (severity in self.severities and (not self.rules or rule in self.rules)
                and (not self.categories or category in self.categories)
                and rule not in self.exclude_rules and category not in self.exclude_categories)


class HeatRule(_Model):
    """When an incident is this hot, raise its severity (or suggest it to the duty officer)."""

    raise_to: Severity
    posts_per_hour: int | None = Field(None, ge=1)  # posts in the last hour at least
    sources: int | None = Field(None, ge=1)  # distinct sources at least
    authors: int | None = Field(None, ge=1)  # distinct authors at least
    action: Literal["raise", "suggest"] = "suggest"

    @model_validator(mode="after")
    def _some_threshold(self) -> HeatRule:
        if self.posts_per_hour is None and self.sources is None and self.authors is None:
            raise ValueError("[[heat]] 需要 posts_per_hour、sources、authors 至少一项")
        return self


class CalendarConfig(_Model):
    """Holidays and make-up workdays (调休) beyond what chinese-calendar knows."""

    holidays: list[date] = []
    workdays: list[date] = []


DEFAULT_CLOCKS = (
    ClockRule(name="发布权威信息", severities=["特别重大", "重大"], within=timedelta(hours=5)),
    ClockRule(name="召开新闻发布会", severities=["特别重大", "重大"], within=timedelta(hours=24)),
    ClockRule(name="权威回应", severities=["较大", "一般"], within=timedelta(hours=48)),
)


class Tier(_Model):
    name: str = Field(min_length=1)
    tags: list[str] = Field(min_length=1)


DEFAULT_TIERS = (
    Tier(name="值班员", tags=["duty"]),
    Tier(name="科室负责人", tags=["lead"]),
    Tier(name="分管领导", tags=["leader"]),
)


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


def _hhmm(value: str) -> str:
    m = _HHMM.match(value.strip())
    if not m or (m.group(1) == "24" and m.group(2) != "00"):
        raise ValueError(f"时间 {value!r} 应为 HH:MM（00:00–24:00）")
    return f"{int(m.group(1)):02d}:{m.group(2)}"


class Person(_Model):
    """Someone on the roster, and where their alerts go. Secrets: put URLs with tokens in
    apprise.yml under a tag (tags = [...]), or write ${ENV} in urls."""

    name: str = Field(min_length=1)
    tags: list[str] = []  # targets in the apprise config
    urls: list[str] = []  # apprise URLs of this person's own; ${VAR} is expanded
    department: str = ""


class Shift(_Model):
    """Who is on duty for a tier: by weekday and time, or on given dates (holidays), which
    then replace that tier's weekday shifts for the day. end ≤ start runs past midnight."""

    name: str = ""
    tier: str
    people: list[str] = Field(min_length=1)
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = []  # empty: every day
    dates: list[date] = []
    start: str = "00:00"
    end: str = "24:00"
    departments: list[str] = []  # 分级负责: this shift covers these departments; empty: all

    _t = field_validator("start", "end")(lambda cls, v: _hhmm(v))


class QuietHours(_Model):
    start: str = "23:00"
    end: str = "07:00"

    _t = field_validator("start", "end")(lambda cls, v: _hhmm(v))


class SeverityPolicy(_Model):
    """Overrides of [escalation] for one severity."""

    first_tier: str | None = None  # who gets the first alert and the reminders
    reminders: list[str] | None = None
    ack_timeout: timedelta | None = None  # not acknowledged within this → next tier, and on
    repeat_every: timedelta | None = None
    quiet: bool | None = None  # hold reminders during quiet hours (never for 特别重大)

    _d = field_validator("ack_timeout", "repeat_every", mode="before")(lambda cls, v: None if v is None else _duration(v))


class EscalationConfig(_Model):
    # "50%" = when half the time is gone; "1h" = one hour before the deadline.
    reminders: list[str] = ["50%", "1h"]
    repeat_every: timedelta = timedelta(hours=2)
    tick: timedelta = timedelta(seconds=30)
    ack_timeout: timedelta | None = None  # default: no acknowledgement timeout
    quiet: QuietHours | None = None  # reminders of severities with quiet = true wait until it ends
    severity: dict[Severity, SeverityPolicy] = {}

    _d = field_validator("repeat_every", "tick", mode="before")(_duration)
    _a = field_validator("ack_timeout", mode="before")(lambda cls, v: None if v is None else _duration(v))

    @field_validator("reminders")
    @classmethod
    def _reminders(cls, values: list[str]) -> list[str]:
        for v in values:
            if isinstance(v, str) and v.strip().endswith("%"):
                try:
                    pct = float(v.strip()[:-1])
                except ValueError:
                    raise ValueError(f"无法识别的提醒点 {v!r}") from None
                if not 0 < pct < 100:
                    raise ValueError(f"提醒点 {v!r} 应在 0% 与 100% 之间")
            else:
                parse_duration(v)
        return values

    @field_validator("repeat_every")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("应大于 0")
        return v


class IncidentConfig(_Model):
    # A post joins the open incident of its rule if that incident saw a post this recently.
    window: timedelta = timedelta(hours=24)
    # Older posts are stored and matched but open no incident (a first poll of a long feed).
    max_post_age: timedelta = timedelta(days=3)
    # A board's official reply (已办理) is recorded as evidence; name a clock here to let it
    # meet that clock by itself (e.g. "权威回应"); empty: the officer confirms.
    reply_meets: str = ""
    # Clocks a regrade starts (e.g. rising to 重大 starts the 5 h and 24 h clocks) count from the
    # first post ("first_post", as the plans count from the event) or from the regrade ("regrade").
    regrade_clocks_from: Literal["first_post", "regrade"] = "first_post"
    # "rule": a rule's posts within the window form one incident. "event": within a rule, a
    # post joins the incident it shares the most salient words with (places, organisations,
    # names, nouns; weighted by rarity) if that share of its words reaches cluster_threshold,
    # else opens its own; a post naming only places, organisations or people the incident never
    # named never joins it, and between equal shares the incident in full burst (posts in the
    # last hour) wins. Before that, a near-duplicate of a post (MinHash over jieba word
    # pairs, estimated Jaccard >= near_duplicate; 0 turns it off) joins that post's incident.
    # A post that joins an incident whose clocks are all answered sends the duty tier a
    # 事件有新进展 alert ("alert"); "reopen" also starts those clocks again from that post.
    new_wave: Literal["alert", "reopen"] = "alert"
    clustering: Literal["rule", "event"] = "rule"
    cluster_threshold: float = Field(0.85, gt=0, le=1)  # share of the post's salient words (bench/quality.py)
    # enough when the post names a place, organisation or person that this incident, and no other
    # open one, names (two complaints about 光明港 in different words)
    cluster_threshold_named: float = Field(0.7, gt=0, le=1)
    near_duplicate: float = Field(0.8, ge=0, le=1)

    _d = field_validator("window", "max_post_age", mode="before")(_duration)


class AlertsConfig(_Model):
    apprise_config: str = "apprise.yml"
    notify_on_open: bool = True
    retry_base: timedelta = timedelta(seconds=30)
    retry_max: timedelta = timedelta(minutes=30)
    give_up_after: timedelta = timedelta(hours=24)
    deliver_every: timedelta = timedelta(seconds=5)
    # how long one send may wait to connect, and then for each answer, before it counts as failed
    # (and is retried); each target is sent to on its own worker meanwhile
    send_timeout: timedelta = timedelta(seconds=5)
    # A target that keeps failing: after this many attempts the alert also goes to fallback_tags.
    fallback_tags: list[str] = []
    fallback_after: int = Field(3, ge=1)
    # This many failed attempts in a row on one target raise one ops alert ([health] tags).
    channel_failures: int = Field(5, ge=1)
    # Storm control: this many alerts due at once for one target go as one digest (0: never).
    storm_threshold: int = Field(5, ge=0)
    # Alert budget: a rule's new incidents past this many in an hour are still opened, but their
    # 新舆情事件 alerts wait for the end of the hour and go as one digest (0: no budget).
    # 特别重大 always pages on its own.
    new_incidents_per_hour: int = Field(10, ge=0)
    # A tier that has already been escalated to about a clock gets the repeats ("still not
    # answered", every repeat_every) as one digest at each full hour, for all its incidents.
    fold_repeats: bool = True
    # Reminders and escalations of one rule to one tier: the first goes at once; those that fall
    # due within group_interval of it wait for the next multiple of group_interval (Beijing
    # clock: :00, :15, :30, :45) and go as one digest. 0 sends each on its own.
    group_interval: timedelta = timedelta(minutes=15)

    _d = field_validator("retry_base", "retry_max", "give_up_after", "deliver_every", "group_interval", "send_timeout",
                         mode="before")(
        _duration
    )


class MatchingConfig(_Model):
    # Characters of the title and of the body that are matched (and clustered); the rest of a
    # longer post is stored but not matched, and the explanation says so. 0: no limit.
    max_chars: int = Field(50_000, ge=0)
    # A post whose processing fails for the same reason this many times is set aside
    # (`monitor posts failed` lists it, `monitor posts retry` puts it back); a database
    # that is locked, full or gone counts no attempt: the post just waits.
    max_attempts: int = Field(3, ge=1)


class DaemonConfig(_Model):
    state_dir: str | None = None
    poll_check: timedelta = timedelta(seconds=5)
    workers: int = Field(4, ge=1, le=32)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    _d = field_validator("poll_check", mode="before")(_duration)


class ReportConfig(_Model):
    """The weekly report (周报), made and sent by the daemon on a cron schedule."""

    enabled: bool = True
    cron: str = "0 9 * * 1"  # minute hour day month weekday, Beijing time: Monday 09:00
    formats: list[Literal["xlsx", "docx", "html", "csv"]] = ["xlsx", "docx"]
    tags: list[str] = ["lead", "leader"]
    out_dir: str | None = None  # default: <state_dir>/reports
    retry_base: timedelta = timedelta(minutes=5)
    give_up_after: timedelta = timedelta(hours=12)

    _d = field_validator("retry_base", "give_up_after", mode="before")(_duration)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        from monitor.cron import check

        try:
            check(v)
        except ValueError as e:
            raise ValueError(f"无法识别的 cron 表达式 {v!r}（应为 分 时 日 月 周，如 \"0 9 * * 1\"）：{e}") from None
        return v


class HealthConfig(_Model):
    """When a source gets one alert: failing N times in a row, or quiet for longer than usual."""

    failures: int = Field(3, ge=1)
    quiet_factor: float = Field(4.0, gt=1)  # quiet = no new item for this many usual gaps
    quiet_min: timedelta = timedelta(hours=6)
    quiet_default: timedelta = timedelta(hours=48)  # before the usual gap is known
    tags: list[str] = []  # default: the first tier's tags

    _d = field_validator("quiet_min", "quiet_default", mode="before")(_duration)


class TemplateTexts(_Model):
    title: str | None = None
    body: str | None = None  # plain text: e-mail, webhooks
    markdown: str | None = None  # DingTalk, WeCom, Feishu


class DemoConfig(_Model):
    """The bundled demo serves its own feed and alert receiver on loopback."""

    port: int = Field(8765, ge=1, le=65535)
    posts: str = "demo-posts.json"
    alerts_log: str = "demo-alerts.log"


class SourceFile(_Model):
    source: list[SourceConfig] = []


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
            seen: set[str] = set()
            for item in items:
                if item.name in seen:
                    raise ValueError(f"[[{what}]] 名称重复：{item.name}")
                seen.add(item.name)
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


Boundary = Literal["word", "token", "none"]


class TermEntry(_Model):
    """A term written as an inline table: its aliases, its own boundary, and conditions of
    its own: it counts only near given words, it weighs more than others, it tolerates
    separators between its characters (拆 迁, 拆-迁, 拆😡迁)."""

    term: str = Field(min_length=1)
    aliases: list[str] = []
    boundary: Boundary | None = None
    near: list[str] = []  # the occurrence counts only with one of these within `within` characters
    within: int = Field(20, ge=0)
    weight: float = Field(1.0, gt=0)  # what one occurrence adds to the rule's score
    gaps: bool | None = None  # None: the rule's


class FieldCounts(_Model):
    """min_count per field: the rule holds when any field reaches its count."""

    title: int | None = Field(None, ge=1)
    body: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _some(self) -> "FieldCounts":
        if self.title is None and self.body is None:
            raise ValueError("min_count 表至少要写 title 或 body")
        return self


TermLike = str | TermEntry


class NearSpec(_Model):
    """Any of a within `within` characters of any of b (a and b: a word or a list of words)."""

    a: str | list[str]
    b: str | list[str]
    within: int = Field(ge=0)  # characters between the two occurrences

    @field_validator("a", "b")
    @classmethod
    def _words(cls, v):
        words = [v] if isinstance(v, str) else v
        if not words or any(not w.strip() for w in words):
            raise ValueError("near 的 a、b 需要非空的词或词列表")
        return v


class WatchRule(_Model):
    name: str = Field(min_length=1)
    terms: list[TermLike] = Field(min_length=1)  # any of these (with aliases) triggers the rule
    severity: Severity
    category: str = ""
    department: str = ""
    all: list[list[TermLike]] = []  # each group: at least one must also occur
    none: list[TermLike] = []  # any of these: the post does not match
    none_phrases: list[str] = []  # vetoes a term occurrence inside it
    near: list[NearSpec] = []
    boundary: Boundary = "word"
    min_count: Annotated[int, Field(ge=1)] | FieldCounts = 1  # or { title = 1, body = 2 }: one in the title, or two in the body
    score: float | None = Field(None, gt=0)  # when set: the occurrences' weights must add up to this
    group: str = ""  # rules of one group: a post goes to the first of them (in file order) that matches
    gaps: bool = False  # separators, spaces, emoji and invisible characters between a term's characters are tolerated
    fields: list[Literal["title", "body"]] = Field(["title", "body"], min_length=1)
    lead_chars: int | None = Field(None, ge=1)  # only the title and the body's first N characters count
    region: str = ""
    tags: list[str] = []

    @field_validator("terms", "none")
    @classmethod
    def _terms(cls, terms: list) -> list:
        for t in terms:
            text = t if isinstance(t, str) else t.term
            if not text.strip():
                raise ValueError("关键词不能为空字符串")
        return [t.strip() if isinstance(t, str) else t for t in terms]

    @field_validator("all")
    @classmethod
    def _groups(cls, groups: list) -> list:
        if any(not g for g in groups):
            raise ValueError("all 中的每一组至少要有一个词")
        return groups


class RuleFile(_Model):
    rule: list[WatchRule] = []

    @model_validator(mode="after")
    def _unique(self) -> RuleFile:
        seen: set[str] = set()
        for r in self.rule:
            if r.name in seen:
                raise ValueError(f"[[rule]] 名称重复：{r.name}")
            seen.add(r.name)
        return self


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


def load_rules(paths: list[Path]) -> list[WatchRule]:
    rules: list[WatchRule] = []
    problems: list[str] = []
    for path in paths:
        try:
            data, text = _load_toml(path)
            rules.extend(_validate(RuleFile, path, data, text).rule)
        except ConfigError as e:
            problems.extend(e.problems)
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
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
        names = [s.name for s in main.source] + [s.name for s in extra]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError([f"{path}: 来源名称重复（含 source_files）：{'、'.join(dupes)}"])
        cfg.main = main = main.model_copy(update={"source": [*main.source, *extra]})
    if watchwords is not None:
        rule_paths = expand_rule_paths([Path(watchwords).resolve()])
    else:
        names = main.watchwords if isinstance(main.watchwords, list) else [main.watchwords]
        rule_paths = expand_rule_paths([cfg.resolve(n) for n in names])
    cfg.rule_paths = rule_paths
    cfg.rules = load_rules(rule_paths)
    if not cfg.rules:
        raise ConfigError([f"{', '.join(map(str, rule_paths))}: 没有任何 [[rule]]，无法匹配舆情"])
    return cfg
