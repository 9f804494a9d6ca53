"""Rules compiled for one scan: every searched string with the roles it plays in every rule."""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.matching.normalize import normalize
from monitor.matching.segment import is_block_char
from monitor.config.rules import TermEntry, WatchRule


@dataclass
class Word:
    """One searched string and every role it plays, for every rule."""

    key: str
    boundaries: set = field(default_factory=set)
    allowed_cuts: frozenset = frozenset()


@dataclass(frozen=True)
class Ref:
    key: str
    shown: str  # the term it stands for
    written: str  # as written (alias or term)
    boundary: str
    near: tuple = ()  # _Refs: one of them must stand within `within` characters
    within: int = 0
    weight: float = 1.0
    gaps: bool = False


@dataclass(frozen=True)
class CompiledRule:
    spec: WatchRule
    triggers: tuple[Ref, ...]
    groups: tuple[tuple[Ref, ...], ...]
    excluded: tuple[Ref, ...]
    phrases: tuple[str, ...]
    near: tuple[tuple[tuple[Ref, ...], tuple[Ref, ...], int], ...]
    trigger_of: dict  # searched string -> its trigger refs: a rule of 100 terms looks up only what occurred


def refs_of(items, default: str, gaps: bool = False) -> list[Ref]:
    refs = []
    keys = set()
    for item in items:
        term = item if isinstance(item, TermEntry) else TermEntry(term=str(item))
        boundary = term.boundary or default
        near = tuple(Ref(normalize(w), w, w, boundary) for w in term.near)
        for written in (term.term, *term.aliases):
            key = normalize(written)
            if key in keys:
                # An alias that folds to its term (擾民 → 扰民), or a term written twice: the
                # same word, so one occurrence is one hit.
                continue
            keys.add(key)
            refs.append(Ref(key, term.term, written, boundary, near, term.within, term.weight,
                             gaps if term.gaps is None else term.gaps))
    return refs


def listed(words) -> list:
    return [words] if isinstance(words, (str, TermEntry)) else list(words)


def cuts_allowed(key: str) -> frozenset:
    """Offsets inside a term where jieba always cuts ('·', '-', spaces): not held against it."""
    return frozenset(i for i in range(1, len(key)) if not (is_block_char(key[i - 1]) and is_block_char(key[i])))
