"""The watchword rule files (`[[rule]]` tables): what a post must say to match."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from monitor.config.base import _Model, repeated
from monitor.severity import Severity

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

    def by_field(self) -> dict[str, int]:
        return {f: n for f, n in (("title", self.title), ("body", self.body)) if n}


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
        for name in repeated(r.name for r in self.rule)[:1]:
            raise ValueError(f"[[rule]] 名称重复：{name}")
        return self
