"""OPML feed lists → [[source]] tables (pure)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET


class OpmlError(Exception):
    pass


def read_opml(data: bytes) -> list[tuple[str, str]]:
    """(name, url) of every feed outline, in document order."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise OpmlError(f"不是合法的 OPML/XML：{e}") from None
    feeds = []
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or "").strip()
        if url:
            name = (outline.get("title") or outline.get("text") or url).strip()
            feeds.append((name, url))
    if not feeds:
        raise OpmlError("OPML 中没有任何带 xmlUrl 的订阅源")
    return feeds


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string: the same escapes for quotes, backslashes and controls.
    return json.dumps(value, ensure_ascii=False)


def to_toml(feeds: list[tuple[str, str]], interval: str = "10m") -> str:
    blocks = []
    for name, url in feeds:
        blocks.append(f"[[source]]\nname = {_toml_string(name)}\ntype = \"feed\"\nurl = {_toml_string(url)}\ninterval = \"{interval}\"\n")
    return "\n".join(blocks)
