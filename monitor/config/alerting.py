"""Who hears what and when: tiers, people and shifts, quiet hours, escalation, alert delivery
and templates."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Literal

from pydantic import Field, field_validator

from monitor.clock import parse_duration
from monitor.config.base import Duration, MaybeDuration, _Model
from monitor.severity import Severity


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
    ack_timeout: MaybeDuration = None  # not acknowledged within this → next tier, and on
    repeat_every: MaybeDuration = None
    quiet: bool | None = None  # hold reminders during quiet hours (never for 特别重大)


class EscalationConfig(_Model):
    # "50%" = when half the time is gone; "1h" = one hour before the deadline.
    reminders: list[str] = ["50%", "1h"]
    repeat_every: Duration = timedelta(hours=2)
    tick: Duration = timedelta(seconds=30)
    ack_timeout: MaybeDuration = None  # default: no acknowledgement timeout
    quiet: QuietHours | None = None  # reminders of severities with quiet = true wait until it ends
    severity: dict[Severity, SeverityPolicy] = {}


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


class AlertsConfig(_Model):
    apprise_config: str = "apprise.yml"
    notify_on_open: bool = True
    retry_base: Duration = timedelta(seconds=30)
    retry_max: Duration = timedelta(minutes=30)
    give_up_after: Duration = timedelta(hours=24)
    deliver_every: Duration = timedelta(seconds=5)
    # how long one send may wait to connect, and then for each answer, before it counts as failed
    # (and is retried); each target is sent to on its own worker meanwhile
    send_timeout: Duration = timedelta(seconds=5)
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
    group_interval: Duration = timedelta(minutes=15)


class TemplateTexts(_Model):
    title: str | None = None
    body: str | None = None  # plain text: e-mail, webhooks
    markdown: str | None = None  # DingTalk, WeCom, Feishu
