"""The duty console (`[web]`): where it listens, the address alerts link to, and who may do what."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator

from monitor.config.base import Duration, Listening, _Model

Role = Literal["值班员", "科室负责人", "分管领导", "管理员"]  # as store.models.ROLES
Action = Literal["ack", "met", "regrade", "merge", "split", "close", "false_positive"]


class Permissions(_Model):
    """The roles that may do each action; 管理员 may always do everything, 分管领导 reads."""

    ack: list[Role] = ["值班员", "科室负责人"]
    met: list[Role] = ["值班员", "科室负责人"]
    confirm: list[Role] = ["值班员", "科室负责人"]  # take an official channel's release as the answer
    false_positive: list[Role] = ["值班员", "科室负责人"]
    regrade: list[Role] = ["科室负责人"]
    merge: list[Role] = ["科室负责人"]
    split: list[Role] = ["科室负责人"]
    close: list[Role] = ["科室负责人"]

    def allows(self, role: str, action: str) -> bool:
        return role == "管理员" or role in getattr(self, action)


class WebConfig(Listening):
    enabled: bool = True
    # host:port; loopback by default: the office's reverse proxy faces the intranet.
    listen: str = "127.0.0.1:8080"
    # What alerts link to (the proxy's address); empty: alerts carry CLI commands only.
    base_url: str = ""
    link_ttl: Duration = timedelta(hours=24)  # a one-tap link in an alert expires after this
    session_ttl: Duration = timedelta(hours=12)
    # Secure cookies: on when base_url is https (set false only for plain-http intranets).
    secure_cookies: bool | None = None
    secret_file: str | None = None  # default <state_dir>/web-secret (MONITOR_WEB_SECRET wins)
    max_failed_logins: int = Field(10, ge=1)
    lockout: Duration = timedelta(minutes=15)
    # 属地管理: an account with a department acts only on that department's incidents
    department_scope: bool = True
    board_page: int = Field(100, ge=10, le=1000)  # incidents per page of 值班台
    may: Permissions = Permissions()

    @field_validator("base_url")
    @classmethod
    def _base(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError(f"base_url 应以 http:// 或 https:// 开头（收到 {v!r}）")
        return v.rstrip("/")

    @property
    def secure(self) -> bool:
        return self.base_url.startswith("https://") if self.secure_cookies is None else self.secure_cookies


class MetricsConfig(Listening):
    """`[metrics]`: Prometheus metrics at /metrics, and /healthz and /readyz for the service manager
    or a load balancer. Loopback by default: Prometheus scrapes it on the machine or through the proxy."""

    listen: str = "127.0.0.1:9464"
