"""Where posts come from: sources (feeds, boards, HTML lists), HTTP politeness, source health."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from monitor.config.base import Duration, MaybeDuration, _Model


class HostPoliteness(_Model):
    concurrency: int | None = Field(None, ge=1)
    delay: MaybeDuration = None


class HttpConfig(_Model):
    timeout: float = Field(20.0, gt=0)  # seconds for connecting and for each read
    # Seconds for a whole fetch, connect to last byte: a server that drips one byte a second
    # never trips the per-read timeout, and must not hold a worker for the whole run.
    deadline: float = Field(60.0, gt=0)
    # A 429/503 Retry-After pauses that source (and paces its host) for at most this long,
    # whatever the server asks: Retry-After: 9999999999 is not 317 years.
    max_retry_after: Duration = timedelta(hours=1)
    # A feed that says how long it stays fresh (Cache-Control max-age, Expires, RSS <ttl>) is
    # not asked again sooner than that, nor held off longer than this: max-age=31536000 on a
    # board's page must not silence it for a year.
    max_cache_wait: Duration = timedelta(hours=1)
    # Politeness towards each host: requests at once, and time between two request starts.
    host_concurrency: int = Field(2, ge=1)
    host_delay: Duration = timedelta(seconds=1)
    hosts: dict[str, HostPoliteness] = {}
    max_body_bytes: int = Field(5_000_000, gt=0)
    max_redirects: int = Field(5, ge=0)
    max_connections: int = Field(10, gt=0)
    user_agent: str = "zwyq-monitor/0.1 (public-opinion response monitor)"


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
    interval: Duration = timedelta(minutes=10)
    jitter: float = Field(0.1, ge=0, le=0.5)
    max_backoff: Duration = timedelta(hours=6)
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
    quiet_after: MaybeDuration = None  # alert when no new item for this long (default: learned)
    # ---- the office's own channel (website news, 政务微博/公众号 through a feed, press releases) ----
    official: bool = False  # its posts never open incidents; a matching one is proposed as an answer
    department: str = ""  # who speaks through it (official channels, boards): reports count its answers for them


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


class SourceFile(_Model):
    source: list[SourceConfig] = []


class HealthConfig(_Model):
    """When a source gets one alert: failing N times in a row, or quiet for longer than usual."""

    failures: int = Field(3, ge=1)
    quiet_factor: float = Field(4.0, gt=1)  # quiet = no new item for this many usual gaps
    quiet_min: Duration = timedelta(hours=6)
    quiet_default: Duration = timedelta(hours=48)  # before the usual gap is known
    tags: list[str] = []  # default: the first tier's tags
