"""Helpers over occurrence spans, each linear or logarithmic in the occurrences: separators
between characters, phrases that hold an occurrence, the closest pair, jieba cuts on demand."""

from __future__ import annotations

import unicodedata
from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.matching.matcher import Matcher


FIELD_NAMES = {"title": "标题", "body": "正文"}


def is_gap(ch: str) -> bool:
    """What evasions put between a term's characters: white space, punctuation, symbols and
    emoji, invisible and combining marks (variation selectors)."""
    if ch.isspace():
        return True
    cat = unicodedata.category(ch)
    return cat[0] in "PSZ" or cat in ("Cf", "Mn", "Me", "Sk")


class Phrases:
    """Occurrences of vetoing phrases, sorted, so finding the one that holds a span is a
    bisect instead of a scan: a post of thousands of phrases stays linear."""

    def __init__(self, spans: list[tuple[int, int]]):
        self.spans = sorted(spans)
        self.starts = [s for s, _e in self.spans]
        self.longest = max((e - s for s, e in self.spans), default=0)

    def holding(self, span: tuple[int, int]):
        """The phrase that holds this occurrence (and is more than it), if any."""
        start, end = span
        lo = bisect_left(self.starts, start - self.longest)
        for p in self.spans[lo:bisect_right(self.starts, start)]:
            if end <= p[1] and p != (start, end):
                return p
        return None


def closest(a_found, b_found):
    """(distance, a word, b word) of the closest pair, or None: sorted sweeps, not all pairs.

    For a at [sa, ea): among b starting at or after sa the nearest is the first to start;
    among b starting before, the one reaching furthest right.
    """
    if not a_found or not b_found:
        return None
    if len(a_found) * len(b_found) <= 10_000:
        # Every pair: ties go to the smallest words, as they always have (the replay's output).
        return min((max(0, sb - ea, sa - eb), ra.written, rb.written) for ra, sa, ea in a_found for rb, sb, eb in b_found)
    bs = sorted(b_found, key=lambda x: x[1])
    starts = [x[1] for x in bs]
    reach = []  # reach[i]: the b among bs[:i+1] that ends last
    for item in bs:
        reach.append(item if not reach or item[2] > reach[-1][2] else reach[-1])
    best = None
    for ra, sa, ea in a_found:
        i = bisect_left(starts, sa)
        if i < len(bs):
            rb, sb, _eb = bs[i]
            d = max(0, sb - ea)
            if best is None or d < best[0]:
                best = (d, ra.written, rb.written)
        if i > 0:
            rb, _sb, eb = reach[i - 1]
            d = max(0, sa - eb)
            if best is None or d < best[0]:
                best = (d, ra.written, rb.written)
    return best


class LazyCuts:
    """jieba boundaries per field, computed on first need, only around occurrences."""

    def __init__(self, matcher: Matcher, norm, found):
        self.matcher = matcher
        self.norm = norm
        self.found = found
        self._cuts: dict[str, set[int]] = {}

    def get(self, f: str) -> set[int]:
        if f not in self._cuts:
            spans = [span for key, spans in self.found[f].items() for span in spans
                     if self.matcher._words[key].boundaries - {"none"}]
            text = self.norm[f][0]
            self._cuts[f] = self.matcher.segmenter.boundaries(text, spans) if spans else set()
        return self._cuts[f]
