"""How posts become incidents and how long an office has to answer: clocks, heat, calendar,
grouping, matching limits."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from pydantic import Field, model_validator

from monitor.config.base import Duration, MaybeDuration, _Model
from monitor.severity import Severity


class ClockRule(_Model):
    """One response clock: which incidents start it and how long they have, in wall-clock
    time (within) or in working days on the Chinese holiday calendar (working_days)."""

    name: str = Field(min_length=1)
    severities: list[Severity] = Field(min_length=1)
    within: MaybeDuration = None
    working_days: int | None = Field(None, ge=1)
    rules: list[str] = []  # only incidents of these rules (empty: any)
    categories: list[str] = []  # only incidents of these categories (empty: any)
    exclude_rules: list[str] = []  # never incidents of these rules
    exclude_categories: list[str] = []  # never incidents of these categories (依申请公开 has its own clock)


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


class IncidentConfig(_Model):
    # A post joins the open incident of its rule if that incident saw a post this recently.
    window: Duration = timedelta(hours=24)
    # Older posts are stored and matched but open no incident (a first poll of a long feed).
    max_post_age: Duration = timedelta(days=3)
    # A board's official reply (已办理) is recorded as evidence; name a clock here to let it
    # meet that clock by itself (e.g. "权威回应"); empty: the officer confirms.
    reply_meets: str = ""
    # A release on an official channel ([[source]] official = true) that matches an open incident
    # is proposed as its answer; true: it meets the clock by itself, from its publication time.
    official_meets: bool = False
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


class MatchingConfig(_Model):
    # Characters of the title and of the body that are matched (and clustered); the rest of a
    # longer post is stored but not matched, and the explanation says so. 0: no limit.
    max_chars: int = Field(50_000, ge=0)
    # A post whose processing fails for the same reason this many times is set aside
    # (`monitor posts failed` lists it, `monitor posts retry` puts it back); a database
    # that is locked, full or gone counts no attempt: the post just waits.
    max_attempts: int = Field(3, ge=1)
