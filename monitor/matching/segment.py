"""jieba with the watchwords in its dictionary, and the word-boundary test.

Each Segmenter owns its own jieba.Tokenizer: the global one is shared process state.
Terms are loaded as a user dictionary without frequencies, so jieba gives each the
smallest frequency that keeps it whole (suggest_freq) and never lowers a word it knows:
forcing a high frequency would break the words around a term.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from bisect import bisect_right
from pathlib import Path

import jieba

log = logging.getLogger(__name__)
jieba.setLogLevel(logging.WARNING)


def _base_dictionary(tmp_dir: str | None) -> tuple[dict, int]:
    """jieba's dictionary, fresh from its cache file. Not kept: a second copy in memory costs
    ~40 MB for the whole life of the process, to save a fraction of a second at a rule reload."""
    tokenizer = jieba.Tokenizer()
    tokenizer.tmp_dir = tmp_dir
    tokenizer.initialize()
    return tokenizer.FREQ, tokenizer.total


class Segmenter:
    def __init__(self, terms: list[str], cache_dir: Path | None = None):
        self._tokenizer = jieba.Tokenizer()
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            # jieba writes its dictionary cache to /tmp by default; keep it in our state dir.
            self._tokenizer.tmp_dir = str(cache_dir)
        self._terms = sorted({t for t in terms if t})
        self._ready = False
        self._lock = threading.Lock()

    def initialize(self) -> None:
        with self._lock:
            if self._ready:
                return
            # Its own dictionary: adding watchwords changes it.
            freq, total = _base_dictionary(self._tokenizer.tmp_dir)
            self._tokenizer.FREQ, self._tokenizer.total = freq, total
            self._tokenizer.initialized = True
            with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".dict", delete=False) as f:
                for term in self._terms:
                    # jieba's user dictionary is space-separated: a term with a space cannot be a word.
                    if " " not in term:
                        f.write(term + "\n")
                userdict = f.name
            try:
                self._tokenizer.load_userdict(userdict)
            finally:
                os.unlink(userdict)
            self._ready = True

    def boundaries(self, text: str, spans: list[tuple[int, int]] | None = None) -> set[int]:
        """Offsets where one jieba word ends and the next begins.

        With `spans`, only the blocks that hold them are segmented. jieba cuts each run of
        Han/alphanumeric characters on its own (its re_han split), so the boundaries inside
        those blocks are exactly those of segmenting the whole text, at a fraction of the cost.
        """
        if not self._ready:
            self.initialize()
        if spans is None:
            windows = [(0, len(text))]
        else:
            windows = _blocks_of(text, spans)
        cuts: set[int] = set()
        done_to = -1
        for start, end in windows:
            if end <= done_to:
                continue
            start = max(start, done_to)
            for _word, s, _e in self._tokenizer.tokenize(text[start:end], HMM=True):
                cuts.add(start + s)
            cuts.add(end)
            cuts.add(start)
            done_to = end
        return cuts


# jieba.re_han_default: the characters jieba keeps together in one block.
_BLOCK = re.compile(r"[\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]")


def is_block_char(ch: str) -> bool:
    return bool(_BLOCK.match(ch))


_BLOCKS = re.compile(r"[\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]+")


def _blocks_of(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """For each span, the window from the start of the block run it begins in to the end of
    the run it ends in (jieba segments each run alone), sorted.

    One regex pass over the text and a bisect per span: linear in the text and the
    occurrences. Walking out from each occurrence was quadratic in one long run
    ("爆炸" * 8000 took 13 s).
    """
    runs = [(m.start(), m.end()) for m in _BLOCKS.finditer(text)]
    starts = [r[0] for r in runs]

    def run_at(p: int) -> tuple[int, int] | None:
        i = bisect_right(starts, p) - 1
        return runs[i] if i >= 0 and runs[i][0] <= p < runs[i][1] else None

    windows = set()
    for s, e in spans:
        left = run_at(s - 1) if s > 0 else None
        right = run_at(e) if e < len(text) else None
        windows.add((left[0] if left else s, right[1] if right else e))
    return sorted(windows)


def cuts_across(start: int, end: int, cuts: set[int]) -> bool:
    """True when an occurrence [start, end) spans a word boundary: 市长 in 南京市|长江大桥.

    An occurrence inside one word is kept: 爆炸 in 发生爆炸, 上饶 in 上饶市.
    """
    return any(c in cuts for c in range(start + 1, end))
