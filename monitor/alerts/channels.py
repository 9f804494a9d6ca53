"""Delivery targets from an apprise config file, one target at a time.

We fan out ourselves (one outbox row per target) instead of apprise.notify(tag=...),
so that a retry after a partial failure goes only to the targets that failed.
"""

from __future__ import annotations

import functools
import hashlib
import html
import os
import logging
import re
import threading
from urllib.parse import quote, urlencode
from dataclasses import dataclass
from pathlib import Path

import apprise

from monitor import secrets

log = logging.getLogger(__name__)


# Channels whose messages render markdown; everything else gets plain text.
MARKDOWN_SCHEMAS = {"dingtalk", "wecombot", "feishu", "lark"}
EMAIL_SCHEMAS = {"mailto", "mailtos"}


def shown(url: str) -> str:
    """An apprise URL as it may be printed when apprise cannot read it (so cannot say which part
    is the token): its scheme only."""
    scheme = url.split("://", 1)[0] if "://" in url else "?"
    return f"{scheme}://***"


def check_file(path: Path) -> list[str]:
    """What apprise would silently drop from its config file, each with file:line: a YAML
    syntax error, a URL of an unknown scheme or that its plugin cannot parse."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        return [f"{path}: 无法读取告警通道配置（{e.strerror}）"]
    if path.suffix.lower() in (".yml", ".yaml"):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            return [f"{where}: YAML 语法错误：{getattr(e, 'problem', None) or e}"]
        urls = []
        for entry in (data.get("urls") or []) if isinstance(data, dict) else []:
            if isinstance(entry, str):
                urls.append(entry)
            elif isinstance(entry, dict):
                urls.extend(str(k) for k in entry)
    else:  # apprise's text format: "url" or "tag=url" per line
        urls = [line.split("=", 1)[1].strip() if "=" in line.split("://", 1)[0] else line.strip()
                for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("#", ";"))]
    lines = text.splitlines()
    problems = []
    for url in urls:
        expanded = os.path.expandvars(url)
        if apprise.Apprise.instantiate(expanded) is None:
            number = next((n for n, line in enumerate(lines, start=1) if url in line), None)
            where = f"{path}:{number}" if number else str(path)
            scheme = url.split("://", 1)[0] if "://" in url else ""
            why = "未知的协议" if scheme.lower() not in _known_schemes() else "地址不完整或格式有误"
            problems.append(f"{where}: 无法识别的告警地址 {shown(url)}（{why}）")
    return problems


@functools.lru_cache(maxsize=1)
def _known_schemes() -> frozenset[str]:
    out = set()
    for plugin in apprise.Apprise().details()["schemas"]:
        for key in ("protocols", "secure_protocols"):
            out.update(p.lower() for p in (plugin.get(key) or ()))
    return frozenset(out)


PERMANENT = "对方拒绝"  # how a permanent failure's text begins (is_permanent reads it back from the log)
_AUTH = re.compile(r"(?i)authenticat|unauthori[sz]ed|forbidden|invalid (api )?(key|token)")


def failure(words: str) -> str:
    """An apprise failure in Chinese, classified as a notifier of Alertmanager answers "worth
    retrying?": a 4xx (other than 408/425/429) or a refused login is the token's or the URL's
    fault and will fail the same way again; a 5xx, a timeout or a lost connection may not."""
    status = re.search(r"error=(\d{3})", words)
    code = int(status.group(1)) if status else None
    if (code is not None and 400 <= code < 500 and code not in (408, 425, 429)) or (code is None and _AUTH.search(words)):
        why = f"HTTP {code}" if code else "认证失败"
        return f"{PERMANENT}（{why}，令牌或地址无效，不再重试）：{words}"
    if code is not None:
        return f"暂时失败（HTTP {code}，稍后重试）：{words}"
    return f"发送失败（连接失败或超时，稍后重试）：{words or '通道未返回原因'}"


def is_permanent(error: str | None) -> bool:
    return bool(error) and error.startswith(PERMANENT)


def email_html(text: str) -> str:
    """An alert's plain text as the HTML part of an e-mail: escaped, line breaks kept. apprise
    derives the text part from it with the breaks (handed plain text, it sends it as HTML, and
    both parts come out as one run-on line)."""
    lines = html.escape(text).split("\n")
    return '<div style="font-family: sans-serif; line-height: 1.6">' + "<br/>".join(lines) + "</div>"


@dataclass(frozen=True)
class Target:
    id: str  # sha256 of the full URL: stable, and no secret stored
    display: str  # apprise's privacy form, safe to log and show
    tag: str


class ChannelError(Exception):
    pass


class Channels:
    def __init__(self, apprise_obj: apprise.Apprise):
        self._apprise = apprise_obj
        self._servers: dict[str, object] = {}
        self._ids: dict[int, str] = {}  # id(server) -> its target id, from the URL as configured
        for server in apprise_obj:
            full = server.url()
            private = server.url(privacy=True)
            _register_secret_parts(full, private)
            self._servers[self._id(server)] = server

    def _id(self, server) -> str:
        """A target's id is the hash of its URL as written, kept: changing its timeouts (which
        apprise writes into url()) must not orphan the outbox rows queued for it."""
        if id(server) not in self._ids:
            self._ids[id(server)] = _target_id(server.url())
        return self._ids[id(server)]

    @classmethod
    def from_file(cls, path: Path) -> Channels:
        if not path.is_file():
            raise ChannelError(f"告警通道配置文件不存在：{path}")
        config = apprise.AppriseConfig()
        if not config.add(str(path)):
            raise ChannelError(f"无法读取告警通道配置：{path}")
        obj = apprise.Apprise()
        obj.add(config)
        if len(obj) == 0:
            raise ChannelError(f"告警通道配置中没有可用的地址：{path}（请检查 apprise 格式与 URL）")
        return cls(obj)

    def add(self, url: str, tag: str) -> bool:
        """A target that is not in the apprise config file (a person's own URL)."""
        before = len(self._apprise)
        if not self._apprise.add(url, tag=tag) or len(self._apprise) == before:
            return False
        server = self._apprise[len(self._apprise) - 1]
        full = server.url()
        _register_secret_parts(full, server.url(privacy=True))
        self._servers[self._id(server)] = server
        return True

    def bound(self, seconds: float) -> None:
        """Every target's connect and read timeouts (apprise's cto/rto, 4 s unless the URL says)."""
        for server in self._apprise:
            self._id(server)  # before url() changes
            server.socket_connect_timeout = server.socket_read_timeout = seconds

    def targets(self, tag: str) -> list[Target]:
        out = []
        for server in self._apprise.find(tag=tag):
            out.append(Target(self._id(server), _display(server), tag))
        return out

    def send(self, target_id: str, title: str, body: str, attach: list[Path] | None = None,
             markdown: str | None = None) -> tuple[bool, str | None]:
        server = self._servers.get(target_id)
        if server is None:
            return False, "该通道已不在告警通道配置中"
        extra = {}
        scheme = server.url().split("://", 1)[0].lower()
        if markdown and scheme in MARKDOWN_SCHEMAS:
            body, extra["body_format"] = markdown, apprise.NotifyFormat.MARKDOWN
        elif scheme in EMAIL_SCHEMAS:
            body, extra["body_format"] = email_html(body), apprise.NotifyFormat.HTML
        if attach:
            files = apprise.AppriseAttachment()
            for path in attach:
                files.add(_attachment_url(path))
            extra["attach"] = files
        with _ThisThread() as captured:
            try:
                ok = bool(server.notify(title=title, body=body, notify_type=apprise.NotifyType.WARNING, **extra))
            except Exception as e:  # a plugin bug must not stop the outbox
                return False, secrets.redact(f"{type(e).__name__}: {e}")
        if ok:
            return True, None
        return False, failure(secrets.redact(captured.lines[-1] if captured.lines else ""))


class _ThisThread(logging.Handler):
    """apprise's warnings from this thread only: sends to several targets run at once, and
    apprise's own LogCapture would hand one target's 401 to another's error."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []
        self.addFilter(lambda record: record.thread == self.thread)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage().strip())

    def __enter__(self):
        self._logger = logging.getLogger("apprise")
        if self._logger.getEffectiveLevel() > logging.WARNING:  # left so: other threads capture too
            self._logger.setLevel(logging.WARNING)
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self._logger.removeHandler(self)


def _attachment_url(path: Path) -> str:
    """Attach under an ASCII name: apprise encodes the whole Content-Disposition header of a
    Chinese file name as one RFC 2047 word, which mail clients show garbled or not at all."""
    stem = path.stem.replace("舆情周报_", "weekly-report-", 1)
    name = "".join(c if c.isascii() else "_" for c in stem) + path.suffix
    return "file://" + quote(str(path.resolve())) + "?" + urlencode({"name": name})


def _display(server) -> str:
    # apprise's privacy form hides tokens; its query string is noise in logs and lists.
    return server.url(privacy=True).split("?", 1)[0]


def _target_id(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def _register_secret_parts(full: str, private: str) -> None:
    """Whatever apprise hides in its privacy form is a secret: register each such piece."""
    split = re.compile(r"[/:@?&=,]+")
    shown = set(split.split(private))
    for part in split.split(full):
        if len(part) >= 6 and part not in shown and not part.isdigit():
            secrets.register(part)
