"""jieba with the watchwords in its dictionary, and the word-boundary test.

Each Segmenter owns its own jieba.Tokenizer: the global one is shared process state.
Terms are loaded as a user dictionary without frequencies, so jieba gives each the
smallest frequency that keeps it whole (suggest_freq) and never lowers a word it knows:
forcing a high frequency would break the words around a term.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path

import jieba

log = logging.getLogger(__name__)
jieba.setLogLevel(logging.WARNING)


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
            self._tokenizer.initialize()
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

    def boundaries(self, text: str) -> set[int]:
        """Offsets where one jieba word ends and the next begins."""
        if not self._ready:
            self.initialize()
        cuts: set[int] = set()
        for _word, start, _end in self._tokenizer.tokenize(text, HMM=True):
            cuts.add(start)
        return cuts


def cuts_across(start: int, end: int, cuts: set[int]) -> bool:
    """True when an occurrence [start, end) spans a word boundary: 市长 in 南京市|长江大桥.

    An occurrence inside one word is kept: 爆炸 in 发生爆炸, 上饶 in 上饶市.
    """
    return any(c in cuts for c in range(start + 1, end))
