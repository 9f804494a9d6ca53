"""Grouping posts into events by content (pure, in memory).

Online, in time order, four stages, the first that answers wins:
  1. a post that reposts another joins that post's event;
  2. a near-duplicate (MinHash over jieba word pairs, Jaccard >= `near_dup`) of a post of an
     active event joins that event: the same text copied with a "转发" or a signature added;
  3. it joins the active event (a post within `window`) with which it shares the most salient
     words, weighted by rarity (IDF), if that share of its words reaches `threshold`, or
     `named_threshold` when it names a person, place or organisation only that event names;
     never an event whose people, places and organisations it shares none of (another site);
     between equal shares, the event with more posts in the last hour (a burst in progress);
  4. a short post without a link (at most SHORT_WORDS salient words) joins the hottest event of
     the last hour it shares a word with;
An original (a post that reposts nothing, from a source that links reposts: its author's own
post) takes stage 2 only: another author's own words about the event are another chain of it,
not a comment on one, and its reposts follow it there.
Else it starts one, which `related` may name as another story of an event it shares a
quarter of its words with: the daemon then sends that incident's alerts in digests.
The defaults were tuned end to end (bench/quality.py, CED slices a and b): an event is a
story, and a new post needs most of its content in an event to join it.
Salient words are jieba nouns, places, organisations and names of two or more
characters: what an event is about, not how people talk about it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING

import jieba

from monitor.matching.normalize import normalize

if TYPE_CHECKING:
    from datasketch import MinHash

# datasketch (which imports scipy) and jieba.posseg's tables cost ~0.7 s and ~100 MB at start:
# they are imported on the first post event mode clusters, never in rule mode.

SALIENT_FLAGS = ("n", "nr", "ns", "nt", "nz", "nw", "vn", "j", "eng")
ENTITY_FLAGS = ("nr", "ns", "nt")  # people, places, organisations: who and where an event is
# A word jieba's dictionary lacks that ends like a place or an organisation (凤坂河, 某某局), and
# a dictionary noun that ends like a district or a town (鼓楼区 and 仓山区 are tagged "n").
PLACE_ENDINGS = tuple("省市区县镇乡村街路巷河港湖江溪山岛湾桥厂局院校所站园")
AREA_ENDINGS = tuple("省市区县镇乡村")
STOP = {"微博", "转发", "回复", "网友", "视频", "图片", "分享", "链接", "全文", "评论", "大家", "问题", "情况", "时候", "东西", "今天", "现在"}


NUM_PERM = 64
MIN_SHINGLES = 6  # shorter texts ("无语", "[蜡烛]") are near-duplicates of everything


@dataclass(frozen=True)
class Features:
    words: frozenset  # salient words
    shingles: frozenset  # adjacent word pairs, for near-duplicates
    entities: frozenset = frozenset()  # the salient words that name a person, place or organisation


def features(text: str) -> Features:
    """One jieba pass: the salient words and the word pairs of a text.

    Words come from jieba.lcut and their part of speech from jieba's dictionary, not from
    jieba.posseg, which tags by HMM and costs some 14 times as much. A word jieba's HMM found
    that is not in the dictionary is nearly always a name (凤坂河, a person, a shop): salient.
    """
    tags = _word_tags()
    words, entities, tokens = set(), set(), []
    for word in jieba.lcut(normalize(text)):
        if not word.strip() or not any(ch.isalnum() for ch in word):
            continue  # spaces and punctuation
        tokens.append(word)
        if len(word) < 2 or word in STOP or word.isdigit():
            continue
        tag = tags.get(word)
        if tag.startswith(SALIENT_FLAGS) if tag else word.isalnum():
            words.add(word)
            if tag.startswith(ENTITY_FLAGS) or (tag == "n" and word.endswith(AREA_ENDINGS)) if tag else word.endswith(PLACE_ENDINGS):
                entities.add(word)
    return Features(frozenset(words), frozenset(zip(tokens, tokens[1:])), frozenset(entities))


@cache
def _word_tags() -> dict:
    import jieba.posseg

    return jieba.posseg.dt.word_tag_tab


def salient(text: str) -> set[str]:
    return set(features(text).words)


SCHEME = "affine32"  # datasketch 2 default; named, since reused permutations need it named


@cache
def _permutations():
    """Drawn once, not per post (seeded: the same every run)."""
    from datasketch import MinHash

    return MinHash(num_perm=NUM_PERM, scheme=SCHEME).permutations


def minhash(shingles) -> MinHash | None:
    if len(shingles) < MIN_SHINGLES:
        return None
    from datasketch import MinHash

    m = MinHash(num_perm=NUM_PERM, permutations=_permutations(), scheme=SCHEME)
    m.update_batch([f"{a}\x1f{b}".encode("utf-8") for a, b in shingles])
    return m


@dataclass
class _Event:
    key: int
    last: datetime
    words: Counter = field(default_factory=Counter)
    entities: Counter = field(default_factory=Counter)
    times: deque = field(default_factory=lambda: deque(maxlen=HEAT_POSTS))

    def heat(self, now: datetime) -> int:
        """Posts in the last hour: a burst in progress draws the comments that follow it."""
        return sum(1 for t in self.times if now - t <= HEAT_SPAN)


HEAT_POSTS = 64
HEAT_SPAN = timedelta(hours=1)
RELATED_SHARE = 0.25  # the share that makes a post another story of an event (the old join threshold)
SHORT_WORDS = 5  # salient words in a post too short to say which story it is about (tuned: bench/quality.py)


class Clusterer:
    """Events keyed by the caller (the daemon uses incident ids): `find` proposes the event a
    post belongs to, `remember` records that it does."""

    def __init__(self, window: timedelta, threshold: float = 0.85, profile_size: int = 40, near_dup: float | None = 0.8,
                 named_threshold: float = 0.7):
        self.window = window
        self.threshold = threshold
        # the share that is enough when the post names a person, place or organisation the event names
        self.named_threshold = min(threshold, named_threshold)
        self.profile_size = profile_size
        self.events: dict[int, _Event] = {}
        self.by_word: dict[str, set[int]] = defaultdict(set)
        self.of_post: dict[str, int] = {}
        self.df: Counter = Counter()
        self.seen = 0
        self.near_dup = near_dup
        self._lsh = None
        if near_dup:
            from datasketch import MinHashLSH

            self._lsh = MinHashLSH(threshold=near_dup, num_perm=NUM_PERM)
        self._sketch: dict[str, MinHash] = {}  # posts within the window, for near-duplicates
        self._sketched: deque = deque()  # (when, post_id), to let old sketches go
        self._next_key = 0

    def idf(self, word: str) -> float:
        return math.log((self.seen + 1) / (self.df[word] + 1)) + 1

    def find(self, when: datetime, about: Features, repost_of: str | None = None, sketch: MinHash | None = None,
             original: bool = False) -> int | None:
        if repost_of is not None and repost_of in self.of_post:
            return self.of_post[repost_of]
        key = self._near_duplicate(when, sketch)
        if original:
            return key
        if key is None:
            key = self._same_event(when, about)
        if key is None and repost_of is None and len(about.words) <= SHORT_WORDS:
            key = self._in_burst(when, about)
        return key

    def _in_burst(self, when: datetime, about: Features) -> int | None:
        """A short comment without a link ("芦山挺住", "红十字会又这样") says too little to match
        an event's content: it goes to the hottest event of the last hour it shares a word with."""
        return self._hottest(when, about.words, lambda event, _w: not self._elsewhere(about, event),
                             lambda event: (event.heat(when), -event.key), hot_only=True)

    def _hottest(self, when: datetime, words, keep, rank, hot_only: bool = False) -> int | None:
        """The active event, among those the index holds under any of `words`, that `keep`
        accepts and `rank` puts first (with a post in the last hour, if `hot_only`)."""
        since, best, best_rank = when - self.window, None, None
        for w in words:
            for key in self.by_word.get(w, ()):
                event = self.events.get(key)
                if event is None or event.last < since or not keep(event, w) or (hot_only and not event.heat(when)):
                    continue
                r = rank(event)
                if best_rank is None or r > best_rank:
                    best, best_rank = key, r
        return best

    def related(self, when: datetime, about: Features) -> int | None:
        """An active event this post, too different to join, is still about: it names one of the
        event's people, places or organisations (the hottest such event), or shares a quarter of
        its salient weight with it and names nothing elsewhere. Another story of that event."""
        best = self._hottest(when, about.entities, lambda event, e: e in event.entities,
                             lambda event: (event.heat(when), event.last, -event.key))
        return best if best is not None else self._same_event(when, about, RELATED_SHARE, named=False)

    def _same_event(self, when: datetime, about: Features, share: float | None = None, named: bool = True) -> int | None:
        # The share of the post's salient words (weighted by rarity) that the event also has:
        # unlike a sum, it means the same with ten posts seen as with a million.
        # Rarest first (names in a tie, so float sums come out the same every run), stopping once
        # no event not yet looked at could still reach the threshold or beat the best (max-score
        # pruning): a word every event has ("黑臭" in a busy rule) is then never looked up.
        weighted = sorted(((self.idf(w), w) for w in about.words), key=lambda x: (-x[0], x[1]))
        total = sum(weight for weight, _w in weighted)
        if total == 0:
            return None
        need = (self.threshold if share is None else share) * total
        need_named = self.named_threshold * total if named else need
        rest, since = total, when - self.window
        best, best_rank, looked = None, None, set()
        for weight, w in weighted:
            if rest < min(need, need_named) or (best_rank is not None and rest < best_rank[0]):
                break
            for key in self.by_word.get(w, ()):
                if key in looked:
                    continue
                looked.add(key)
                event = self.events[key]
                if event.last < since or self._elsewhere(about, event):
                    continue
                score, profile = 0.0, event.words
                for weight2, w2 in weighted:
                    if w2 in profile:
                        score += weight2
                # Ties go to the event in full burst now, then to the older one.
                rank = (score, event.heat(when), -key)
                enough = score >= need or (named and score >= need_named and self._named_only_by(about, event, since))
                if enough and (best_rank is None or rank > best_rank):
                    best, best_rank = key, rank
            rest -= weight
        return best

    def _named_only_by(self, about: Features, event: _Event, since: datetime) -> bool:
        """The post names a person, place or organisation that this event, and no other active
        one, names: 光明港 in one complaint among a city's, not 波士顿 in every post of a burst."""
        for e in about.entities:
            if e in event.entities and all(k == event.key or self.events[k].last < since
                                           for k in self.by_word.get(e, ()) if k in self.events):
                return True
        return False

    @staticmethod
    def _elsewhere(about: Features, event: _Event) -> bool:
        """A post naming only people, places or organisations the event never named is about
        something else, however many other words they share (another site, another plant)."""
        return bool(about.entities and event.entities) and not any(e in event.entities for e in about.entities)

    def _near_duplicate(self, when: datetime, sketch: MinHash | None) -> int | None:
        if self._lsh is None or sketch is None:
            return None
        best, best_sim, since = None, 0.0, when - self.window
        for post_id in sorted(self._lsh.query(sketch)):
            key = self.of_post.get(post_id)
            event = self.events.get(key) if key is not None else None
            if event is None or event.last < since:
                continue
            sim = sketch.jaccard(self._sketch[post_id])
            if sim >= self.near_dup and sim > best_sim:
                best, best_sim = key, sim
        return best

    def describe(self, text: str) -> tuple[Features, MinHash | None]:
        """What find and remember take of a text: its features, and its sketch if this
        clusterer looks for near-duplicates."""
        f = features(text)
        return f, minhash(f.shingles) if self._lsh is not None else None

    def remember(self, post_id: str, when: datetime, about: Features, key: int, sketch: MinHash | None = None) -> None:
        if sketch is not None and self._lsh is not None and post_id not in self._sketch:
            self._lsh.insert(post_id, sketch)
            self._sketch[post_id] = sketch
            self._sketched.append((when, post_id))
            # Posts arrive in about time order: sketches older than the window cannot match again.
            while self._sketched and self._sketched[0][0] < when - 2 * self.window:
                _old, gone = self._sketched.popleft()
                self._lsh.remove(gone)
                del self._sketch[gone]
        self.seen += 1
        self.df.update(about.words)
        event = self.events.setdefault(key, _Event(key, when))
        event.last = max(event.last, when)
        event.times.append(when)
        event.words.update(sorted(about.words))
        event.entities.update(sorted(about.entities))
        if len(event.words) > self.profile_size * 2:  # keep the profile to what the event is most about
            event.words = Counter(dict(event.words.most_common(self.profile_size)))
        if len(event.entities) > self.profile_size * 2:
            event.entities = Counter(dict(event.entities.most_common(self.profile_size)))
        for w in event.words:
            self.by_word[w].add(key)
        self.of_post[post_id] = key

    def forget(self, key: int) -> None:
        event = self.events.pop(key, None)
        if event is not None:
            for w in event.words:
                self.by_word[w].discard(key)

    def add(self, post_id: str, when: datetime, text: str, repost_of: str | None = None, original: bool = False) -> int:
        """find + remember in one step, new events numbered here: for offline use (benchmarks)."""
        about, sketch = self.describe(text)
        key = self.find(when, about, repost_of, sketch, original)
        if key is None:
            key, self._next_key = self._next_key, self._next_key + 1
        self.remember(post_id, when, about, key, sketch)
        return key
