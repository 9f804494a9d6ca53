"""Text normalization that keeps positions: one character in, one character out."""

from __future__ import annotations

import unicodedata
from functools import lru_cache


@lru_cache(maxsize=65536)
def _fold(ch: str) -> str:
    folded = unicodedata.normalize("NFKC", ch).lower()
    # Only 1:1 foldings keep offsets valid (full-width Ａ → a, ＃ → #); others stay as they are.
    return folded if len(folded) == 1 else ch.lower() if len(ch.lower()) == 1 else ch


def normalize(text: str) -> str:
    if text.isascii():
        return text.lower()
    return "".join(map(_fold, text))
