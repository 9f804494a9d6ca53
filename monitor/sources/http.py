"""HTTP fetching with cache headers, a size limit, a total deadline and errors people can read.

Every error is a Chinese sentence first (页面不存在（HTTP 404）), the library's detail after.
A server that says "later" (429, or 503 with Retry-After) and our own throttling (the HTTP
pool is full) are `Throttled`, not failures: the source is asked again later, and nobody
is told the source is broken.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import httpx

from monitor.config import HttpConfig


class FetchError(Exception):
    pass


class Throttled(Exception):
    """Come back later; `server` tells whether the server said it or the monitor itself."""

    def __init__(self, message: str, wait: timedelta | None, server: bool = True):
        super().__init__(message)
        self.wait = wait
        self.server = server


@dataclass(frozen=True)
class Fetched:
    status: int
    body: bytes | None  # None when the server said 304 Not Modified
    etag: str | None
    last_modified: str | None
    content_type: str | None
    fresh_for: timedelta | None = None  # how long the server says this stays fresh

    @property
    def not_modified(self) -> bool:
        return self.status == 304


STATUS_TEXT = {
    400: "请求无效", 401: "需要登录或授权", 403: "访问被拒绝", 404: "页面不存在", 405: "不支持该请求方法",
    408: "服务器等待请求超时", 410: "页面已被删除", 429: "请求过于频繁", 451: "因法律原因不可访问",
    500: "服务器内部错误", 501: "服务器不支持该请求", 502: "网关错误", 503: "服务暂时不可用", 504: "网关超时",
}


def status_text(status: int) -> str:
    text = STATUS_TEXT.get(status) or ("服务器出错" if status >= 500 else "请求被拒绝" if status >= 400 else "意外的响应")
    return f"{text}（HTTP {status}）"


def make_client(cfg: HttpConfig, connections: int | None = None) -> httpx.Client:
    # One pool for every source; httpx's pool slows as it grows, so keep-alive stays at
    # max_connections, while `connections` lets every poll under way hold one (a stuck poll
    # must not leave the others waiting for a connection).
    total = max(cfg.max_connections, connections or 0)
    return httpx.Client(
        timeout=_timeout(cfg),
        follow_redirects=True,
        max_redirects=cfg.max_redirects,
        limits=httpx.Limits(max_connections=total, max_keepalive_connections=cfg.max_connections),
        headers={"User-Agent": cfg.user_agent, "Accept-Encoding": "gzip, deflate"},
    )


# What a failed connection or transfer means, the first class that fits (most specific first).
_TRANSPORT = (
    (httpx.DecodingError, "响应解压失败：{e}"),
    (httpx.ConnectError, "连接失败：无法连接服务器（{name}: {e}）"),
    (httpx.RemoteProtocolError, "服务器的响应不符合 HTTP 协议（{name}: {e}）"),
    (httpx.ReadError, "读取响应时连接中断（{name}: {e}）"),
    (Exception, "连接失败：{name}: {e}"),
)

POOL_WAIT = 5.0  # seconds a fetch waits for a free connection before it is put back


def _timeout(cfg: HttpConfig) -> httpx.Timeout:
    step = min(cfg.timeout, cfg.deadline)
    return httpx.Timeout(connect=step, read=step, write=step, pool=POOL_WAIT)


def http_date(value: str | None) -> datetime | None:
    """An HTTP date as an aware datetime (UTC when it names no zone); None for junk. Never raises."""
    try:
        when = parsedate_to_datetime(value or "")
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def retry_after(value: str | None, now: datetime, cap: timedelta) -> timedelta | None:
    """Seconds or an HTTP date, at most `cap`; None for anything else. Never raises."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        # Compare as text first: int("9" * 5000) is fine, timedelta(seconds=it) is not.
        return cap if len(value) > 9 else min(timedelta(seconds=int(value)), cap)
    when = http_date(value)
    if when is None:
        return None
    try:
        return min(max(when - now, timedelta(0)), cap)
    except OverflowError:
        return cap


def freshness(headers, now: datetime) -> timedelta | None:
    """How long the response says it stays fresh: Cache-Control max-age, else Expires (RFC 9111
    §4.2.1). None when it says nothing, or no-cache / no-store (ask at the usual interval)."""
    control = [d.strip().lower() for d in (headers.get("Cache-Control") or "").split(",") if d.strip()]
    if any(d in ("no-cache", "no-store") for d in control):
        return None
    for directive in control:
        name, _, value = directive.partition("=")
        if name.strip() == "max-age":
            value = value.strip().strip('"')
            if not value.isdigit():
                return None
            return timedelta(seconds=int(value)) if len(value) <= 9 else timedelta(days=365)
    when = http_date(headers.get("Expires"))
    if when is None:  # none, or "Expires: 0" and other junk: already stale
        return None
    # Measured from the server's own Date where it sends one: its clock may be off from ours.
    sent = http_date(headers.get("Date")) or now
    try:
        return max(when - sent, timedelta(0)) or None
    except OverflowError:
        return None


def fetch(
    client: httpx.Client,
    url: str,
    *,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
    now: datetime,
    method: str = "GET",
    extra_headers: dict[str, str] | None = None,
    content: str | None = None,
    deadline: float = 60.0,
    max_retry_after: timedelta = timedelta(hours=1),
) -> Fetched:
    """One request. `deadline` bounds the whole fetch, connect to last byte: it is checked
    after every read, and no single read may wait longer than it."""
    headers = dict(extra_headers or {})
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    started = time.monotonic()

    def overdue() -> FetchError:
        return FetchError(f"抓取超过总时限 {deadline:g} 秒仍未完成（服务器发送过慢）")

    try:
        with client.stream(method, url, headers=headers, content=content.encode("utf-8") if content is not None else None) as response:
            if response.status_code == 304:  # a 304 may bring new validators: they are the ones to send next
                return Fetched(304, None, response.headers.get("ETag") or etag,
                               response.headers.get("Last-Modified") or last_modified, None, freshness(response.headers, now))
            if response.status_code >= 400 or response.status_code < 200:
                wait = retry_after(response.headers.get("Retry-After"), now, max_retry_after)
                if response.status_code == 429 or (response.status_code == 503 and wait is not None):
                    raise Throttled(f"服务器要求稍后再试：{status_text(response.status_code)}", wait)
                raise FetchError(status_text(response.status_code))
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"响应过大：{int(declared)} 字节，上限 {max_bytes} 字节")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"响应过大：超过上限 {max_bytes} 字节")
                chunks.append(chunk)
                if time.monotonic() - started > deadline:
                    raise overdue()
            return Fetched(
                response.status_code,
                b"".join(chunks),
                response.headers.get("ETag"),
                response.headers.get("Last-Modified"),
                response.headers.get("Content-Type"),
                freshness(response.headers, now),
            )
    except httpx.TooManyRedirects:
        raise FetchError("重定向次数过多") from None
    except httpx.PoolTimeout:
        # Every connection of our own pool is busy: our throttling, not the source's fault.
        raise Throttled("本机连接池已满，稍后再抓取", timedelta(seconds=POOL_WAIT), server=False) from None
    except httpx.ConnectTimeout:
        raise FetchError("连接超时：服务器没有响应") from None
    except httpx.TimeoutException:
        if time.monotonic() - started > deadline:
            raise overdue() from None
        raise FetchError("请求超时：服务器长时间没有发送数据") from None
    except (httpx.DecodingError, httpx.TransportError) as e:
        what = next(text for kind, text in _TRANSPORT if isinstance(e, kind))
        raise FetchError(what.format(name=type(e).__name__, e=e)) from None
    except httpx.InvalidURL as e:
        raise FetchError(f"地址无效：{e}") from None
