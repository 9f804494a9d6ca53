"""Watchword matching: cheap Aho–Corasick prefilter first, jieba only on posts with a candidate."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import ahocorasick

from monitor.matching.normalize import normalize
from monitor.matching.segment import Segmenter, cuts_across
from monitor.severity import rank


@dataclass(frozen=True)
class RuleSpec:
    name: str
    terms: tuple[str, ...]
    severity: str
    category: str = ""
    department: str = ""


@dataclass(frozen=True)
class TermHit:
    term: str
    start: int
    end: int


@dataclass(frozen=True)
class Match:
    rule: RuleSpec
    hits: tuple[TermHit, ...]
    rejected: tuple[TermHit, ...] = field(default=())  # occurrences that cut across words

    @property
    def terms(self) -> list[str]:
        seen: dict[str, None] = {}
        for h in self.hits:
            seen.setdefault(h.term, None)
        return list(seen)


def post_text(title: str, body: str) -> str:
    # A newline keeps jieba from joining the last title word with the first body word.
    return f"{title}\n{body}" if body else title


class Matcher:
    def __init__(self, rules: list[RuleSpec], cache_dir: Path | None = None):
        self.rules = rules
        self._automaton = ahocorasick.Automaton()
        by_term: dict[str, list[tuple[RuleSpec, str]]] = {}
        for rule in rules:
            for term in rule.terms:
                key = normalize(term)
                by_term.setdefault(key, []).append((rule, term))
        for key, owners in by_term.items():
            self._automaton.add_word(key, (len(key), owners))
        if by_term:
            self._automaton.make_automaton()
        self._empty = not by_term
        self.segmenter = Segmenter(list(by_term), cache_dir)

    def _occurrences(self, normalized: str) -> list[tuple[int, int, list]]:
        """Raw occurrences (start, end, owners); positions are valid in the original text too."""
        if self._empty:
            return []
        return [
            (end + 1 - length, end + 1, owners)
            for end, (length, owners) in self._automaton.iter(normalized)
        ]

    def match(self, title: str, body: str) -> list[Match]:
        text = normalize(post_text(title, body))
        found = self._occurrences(text)
        if not found:
            return []
        cuts = self.segmenter.boundaries(text, [(s, e) for s, e, _owners in found])
        hits: dict[str, list[TermHit]] = {}
        rejected: dict[str, list[TermHit]] = {}
        rules: dict[str, RuleSpec] = {}
        for start, end, owners in found:
            crossing = cuts_across(start, end, cuts)
            for rule, term in owners:
                rules[rule.name] = rule
                (rejected if crossing else hits).setdefault(rule.name, []).append(TermHit(term, start, end))
        matches = [
            Match(rules[name], tuple(h), tuple(rejected.get(name, ())))
            for name, h in hits.items()
        ]
        order = {r.name: i for i, r in enumerate(self.rules)}
        matches.sort(key=lambda m: (rank(m.rule.severity), order[m.rule.name]))
        return matches
