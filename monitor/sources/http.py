"""HTTP fetching with cache headers, a size limit and errors people can read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import httpx

from monitor.config import HttpConfig


class FetchError(Exception):
    def __init__(self, message: str, retry_after: timedelta | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Fetched:
    status: int
    body: bytes | None  # None when the server said 304 Not Modified
    etag: str | None
    last_modified: str | None
    content_type: str | None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def make_client(cfg: HttpConfig) -> httpx.Client:
    # One pool for every source; httpx's pool slows as it grows, ~10 connections is best.
    return httpx.Client(
        timeout=cfg.timeout,
        follow_redirects=True,
        max_redirects=cfg.max_redirects,
        limits=httpx.Limits(max_connections=cfg.max_connections, max_keepalive_connections=cfg.max_connections),
        headers={"User-Agent": cfg.user_agent, "Accept-Encoding": "gzip, deflate"},
    )


def _retry_after(value: str | None, now: datetime) -> timedelta | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(when - now, timedelta(0))


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
) -> Fetched:
    headers = dict(extra_headers or {})
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        with client.stream(method, url, headers=headers, content=content.encode("utf-8") if content is not None else None) as response:
            if response.status_code == 304:
                return Fetched(304, None, etag, last_modified, None)
            if response.status_code >= 400 or response.status_code < 200:
                raise FetchError(
                    f"HTTP {response.status_code} {response.reason_phrase}",
                    _retry_after(response.headers.get("Retry-After"), now),
                )
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"响应过大：{int(declared)} 字节，上限 {max_bytes} 字节")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"响应过大：超过上限 {max_bytes} 字节")
                chunks.append(chunk)
            return Fetched(
                response.status_code,
                b"".join(chunks),
                response.headers.get("ETag"),
                response.headers.get("Last-Modified"),
                response.headers.get("Content-Type"),
            )
    except httpx.TooManyRedirects:
        raise FetchError("重定向次数过多") from None
    except httpx.TimeoutException:
        raise FetchError("请求超时") from None
    except httpx.DecodingError as e:
        raise FetchError(f"响应解压失败：{e}") from None
    except httpx.TransportError as e:
        raise FetchError(f"连接失败：{type(e).__name__}: {e}") from None
