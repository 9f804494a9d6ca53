"""Grouping posts into events by content (pure, in memory).

Online, in time order: a post that reposts another joins that post's event; otherwise it
joins the active event (a post within `window`) with which it shares the most salient
words, weighted by rarity (IDF), if that share of its words reaches `threshold`; else it
starts one.
Salient words are jieba nouns, places, organisations and names of two or more
characters: what an event is about, not how people talk about it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import jieba.posseg

from monitor.matching.normalize import normalize

SALIENT_FLAGS = ("n", "nr", "ns", "nt", "nz", "nw", "vn", "j", "eng")
STOP = {"微博", "转发", "回复", "网友", "视频", "图片", "分享", "链接", "全文", "评论", "大家", "问题", "情况", "时候", "东西", "今天", "现在"}


def salient(text: str) -> set[str]:
    words = set()
    for w in jieba.posseg.cut(normalize(text)):
        if len(w.word) >= 2 and w.flag.startswith(SALIENT_FLAGS) and w.word not in STOP and not w.word.isdigit():
            words.add(w.word)
    return words


@dataclass
class _Event:
    key: int
    last: datetime
    words: Counter = field(default_factory=Counter)


class Clusterer:
    """Events keyed by the caller (the daemon uses incident ids): `find` proposes the event a
    post belongs to, `remember` records that it does."""

    def __init__(self, window: timedelta, threshold: float = 0.25, profile_size: int = 40):
        self.window = window
        self.threshold = threshold
        self.profile_size = profile_size
        self.events: dict[int, _Event] = {}
        self.by_word: dict[str, set[int]] = defaultdict(set)
        self.of_post: dict[str, int] = {}
        self.df: Counter = Counter()
        self.seen = 0

    def idf(self, word: str) -> float:
        return math.log((self.seen + 1) / (self.df[word] + 1)) + 1

    def find(self, when: datetime, words: set[str], repost_of: str | None = None) -> int | None:
        if repost_of is not None and repost_of in self.of_post:
            return self.of_post[repost_of]
        # The share of the post's salient words (weighted by rarity) that the event also has:
        # unlike a sum, it means the same with ten posts seen as with a million.
        total = sum(self.idf(w) for w in words)
        if total == 0:
            return None
        scores: Counter = Counter()
        for w in words:
            weight = self.idf(w)
            for key in self.by_word.get(w, ()):
                event = self.events[key]
                if when - event.last <= self.window and w in event.words:
                    scores[key] += weight
        if not scores:
            return None
        key, score = scores.most_common(1)[0]
        return key if score / total >= self.threshold else None

    def remember(self, post_id: str, when: datetime, words: set[str], key: int) -> None:
        self.seen += 1
        self.df.update(words)
        event = self.events.setdefault(key, _Event(key, when))
        event.last = max(event.last, when)
        event.words.update(words)
        if len(event.words) > self.profile_size * 2:  # keep the profile to what the event is most about
            event.words = Counter(dict(event.words.most_common(self.profile_size)))
        for w in event.words:
            self.by_word[w].add(key)
        self.of_post[post_id] = key

    def forget(self, key: int) -> None:
        event = self.events.pop(key, None)
        if event is not None:
            for w in event.words:
                self.by_word[w].discard(key)

    def add(self, post_id: str, when: datetime, text: str, repost_of: str | None = None) -> int:
        """find + remember in one step, new events numbered here: for offline use (benchmarks)."""
        words = salient(text)
        key = self.find(when, words, repost_of)
        if key is None:
            key = max(self.events, default=-1) + 1
        self.remember(post_id, when, words, key)
        return key
