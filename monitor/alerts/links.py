"""One-tap links in alerts: signed, expiring, bound to one delivery (its recipient) and one
incident. Opening one shows what it will do; only the tap (a POST) does it, so a chat app's
link preview never acknowledges anything. A delivery's link acts once (used_links)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

# Rendered into an alert's text where its one-tap link goes; delivery puts each recipient's
# own link in its place (a marker no post text contains: it is not Chinese, not a URL).
ACK_MARK = "⟦ack-link⟧"


def readable(text: str) -> str:
    """A stored alert text as a person reads it before sending (replay, `alerts list`)."""
    return text.replace(ACK_MARK, "〔一键确认链接，发送时按收件人签发〕")


def load_secret(path: Path) -> bytes:
    """MONITOR_WEB_SECRET, or the state directory's secret file (made on first use, 0600).
    Several instances behind one proxy must share it."""
    env = os.environ.get("MONITOR_WEB_SECRET")
    if env:
        return env.encode()
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secret)
        return secret


class LinkError(Exception):
    """Why a link does not act, in Chinese."""


@dataclass(frozen=True)
class LinkClaim:
    outbox_id: int
    incident_id: int


class Links:
    def __init__(self, secret: bytes, base_url: str, ttl: timedelta, clock=None):
        self.secret = secret
        signer = TimestampSigner
        if clock is not None:  # links age on the monitor's clock, so tests need not wait a day
            signer = type("ClockSigner", (TimestampSigner,), {"get_timestamp": lambda self: int(clock.now().timestamp())})
        self._signer = URLSafeTimedSerializer(secret, salt="monitor.ack-link", signer=signer)
        self.base_url = base_url.rstrip("/")
        self.ttl = ttl

    def incident_url(self, incident_id: int) -> str:
        return f"{self.base_url}/incidents/{incident_id}"

    def ack_token(self, outbox_id: int, incident_id: int) -> str:
        return self._signer.dumps([outbox_id, incident_id])

    def ack_url(self, outbox_id: int, incident_id: int) -> str:
        return f"{self.base_url}/a/{self.ack_token(outbox_id, incident_id)}"

    def read(self, token: str) -> LinkClaim:
        try:
            outbox_id, incident_id = self._signer.loads(token, max_age=int(self.ttl.total_seconds()))
        except SignatureExpired:
            raise LinkError("链接已过期：请登录值班台处置，或使用最新告警中的链接") from None
        except (BadSignature, ValueError, TypeError):
            raise LinkError("链接无效（可能被改动或不完整）：没有执行任何操作") from None
        return LinkClaim(int(outbox_id), int(incident_id))

    def fill(self, text: str | None, outbox_id: int, incident_id: int | None) -> str | None:
        """An alert's text for one recipient: the marker becomes that recipient's link."""
        if text is None or ACK_MARK not in text:
            return text
        return text.replace(ACK_MARK, self.ack_url(outbox_id, incident_id) if incident_id else "")


def links_for(cfg, clock=None) -> Links | None:
    """The signer of a configuration's console (None without [web])."""
    web = cfg.main.web
    if web is None or not web.enabled:
        return None
    secret = load_secret(cfg.resolve(web.secret_file) if web.secret_file else cfg.state_dir / "web-secret")
    return Links(secret, web.base_url or f"http://{web.listen}", web.link_ttl, clock)
