"""Text normalization for matching, with a map back to the original positions.

One str.translate does the common work in C: full-width → half-width (ＰＸ项目), the CJK
compatibility ideographs, traditional → simplified characters (OpenCC's t2s, per
character: terms are normalized the same way, so both sides always agree), and lower
case. Removing invisible characters (U+200B–U+200F, U+2060–U+2064, U+FEFF, soft hyphen:
real Weibo text has them) and collapsing runs of white space change the length; only
then is a position map built.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Compatibility forms in Chinese text; only 1:1 foldings, so the table keeps lengths.
_NFKC_RANGES = ((0x2000, 0x2070), (0x2E80, 0x2FE0), (0x3000, 0x3001), (0xF900, 0xFB00), (0xFF00, 0xFFF0))
# Variant and look-alike characters that t2s leaves alone, as they turn up in complaints to get
# past keyword filters (釆石场 for 采石场); one character to one, so lengths keep.
VARIANTS = {
    "釆": "采", "叧": "另", "兲": "天", "亊": "事", "両": "两", "緫": "总", "揔": "总", "峯": "峰", "綫": "线",
    "衆": "众", "裡": "里", "裏": "里", "啓": "启", "敎": "教", "姉": "姊", "冨": "富", "汚": "污", "浄": "净",
    "圧": "压", "囯": "国", "囻": "国", "圀": "国", "閙": "闹", "鬧": "闹", "戸": "户", "卽": "即", "旣": "既",
    "噁": "恶", "歳": "岁", "収": "收", "攷": "考", "沒": "没", "眞": "真", "黒": "黑",
}
_CJK_RANGES = ((0x3400, 0x4DC0), (0x4E00, 0xA000))
INVISIBLE = "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"
_NEEDS_MAP = re.compile(f"[{INVISIBLE}]|\\s{{2,}}")


def _t2s_table() -> dict[int, str]:
    try:
        import opencc
    except ImportError:  # the package is a dependency; tolerate its absence in odd installs
        return {}
    converter = opencc.OpenCC("t2s")
    chars = "".join(chr(cp) for lo, hi in _CJK_RANGES for cp in range(lo, hi))
    converted = converter.convert(chars)
    if len(converted) != len(chars):  # phrase rules changed a length: go one by one
        converted = "".join(c if len(c) == 1 else o for o, c in ((o, converter.convert(o)) for o in chars))
    return {ord(o): c for o, c in zip(chars, converted, strict=True) if o != c}


def _table() -> dict[int, str]:
    table = {}
    for lo, hi in _NFKC_RANGES:
        for cp in range(lo, hi):
            folded = unicodedata.normalize("NFKC", chr(cp))
            # Letters, digits and the symbols jieba keeps inside words; full-width
            # punctuation (，！（）) is ordinary Chinese and left alone, which keeps it cheap.
            if len(folded) == 1 and folded != chr(cp) and (folded.isalnum() or folded in "+#&._%-"):
                table[cp] = folded
    t2s = _t2s_table()
    for cp, folded in list(table.items()):  # 兀 (compat) → 兀 → simplified, in one step
        table[cp] = t2s.get(ord(folded), folded)
    for cp, simple in t2s.items():
        table.setdefault(cp, simple)
    for variant, plain in VARIANTS.items():
        if variant != plain:
            table[ord(variant)] = t2s.get(ord(plain), plain)
    return table


_FOLD = _table()
# A character class scanned in C: most posts need no substitution at all.
_NEEDS_FOLD = re.compile("[" + "".join(re.escape(chr(cp)) for cp in sorted(_FOLD)) + "]")


def _fold_match(m: re.Match) -> str:
    return _FOLD[ord(m.group())]


@lru_cache(maxsize=4096)
def _lower_one(ch: str) -> str:
    low = ch.lower()
    return low if len(low) == 1 else ch


def fold(text: str) -> str:
    """Same length as text: full-width, traditional and case folded."""
    if text.isascii():
        return text.lower()
    folded = _NEEDS_FOLD.sub(_fold_match, text)
    lowered = folded.lower()
    if len(lowered) == len(folded):
        return lowered
    return "".join(map(_lower_one, folded))  # a rare character whose lower case is longer


def normalize_map(text: str) -> tuple[str, list[int] | None]:
    """(normalized, positions): positions[i] is the original index of normalized[i];
    None when they are the same (the usual case, and free)."""
    folded = fold(text)
    if not _NEEDS_MAP.search(folded):
        return folded, None
    out: list[str] = []
    positions: list[int] = []
    in_space = False
    for i, ch in enumerate(folded):
        if ch in INVISIBLE:
            continue
        if ch.isspace():
            if in_space:
                continue
            in_space = True
        else:
            in_space = False
        out.append(ch)
        positions.append(i)
    return "".join(out), positions


def normalize(text: str) -> str:
    return normalize_map(text)[0]


def original_span(positions: list[int] | None, start: int, end: int) -> tuple[int, int]:
    """A span of the normalized text as a span of the original text."""
    if positions is None:
        return start, end
    return positions[start], positions[end - 1] + 1
