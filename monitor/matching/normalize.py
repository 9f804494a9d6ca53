"""Text normalization that keeps positions: one character in, one character out."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

# Compatibility forms that occur in Chinese text: full-width ASCII (ＰＸ项目), the ideographic
# space, general punctuation and CJK compatibility ideographs. Only 1:1 foldings are kept,
# so offsets stay valid in the original text; str.translate does the work in C.
_RANGES = ((0x2000, 0x2070), (0x3000, 0x3001), (0xF900, 0xFB00), (0xFF00, 0xFFF0))


def _table() -> dict[int, str]:
    table = {}
    for lo, hi in _RANGES:
        for cp in range(lo, hi):
            folded = unicodedata.normalize("NFKC", chr(cp))
            if len(folded) == 1 and folded != chr(cp):
                table[cp] = folded
    return table


_FOLD = _table()


@lru_cache(maxsize=4096)
def _lower_one(ch: str) -> str:
    low = ch.lower()
    return low if len(low) == 1 else ch


def normalize(text: str) -> str:
    if text.isascii():
        return text.lower()
    folded = text.translate(_FOLD)
    lowered = folded.lower()
    if len(lowered) == len(folded):
        return lowered
    return "".join(map(_lower_one, folded))  # a rare character whose lower case is longer
