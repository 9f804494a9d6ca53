"""Find the line of a key in a TOML file, so validation errors can name it.

tomllib gives values without positions; this scans the text for table headers and
`key =` lines. It is a locator for messages, not a parser: when it cannot tell, it
returns the line of the nearest enclosing table, or None.
"""

from __future__ import annotations

import re


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-.]+)\s*=""")


def _split_key(key: str) -> tuple[str, ...]:
    parts = re.findall(r'"[^"]*"|\'[^\']*\'|[^.\s]+', key)
    return tuple(p.strip("\"'") for p in parts)


def key_lines(text: str) -> dict[tuple, int]:
    """Map each table and key path to its 1-based line; array tables carry their index."""
    lines: dict[tuple, int] = {}
    counters: dict[tuple, int] = {}
    table: tuple = ()
    in_multiline = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_multiline:
            if in_multiline in line:
                in_multiline = None
            continue
        header = _HEADER.match(line)
        if header and not _KEY.match(line):
            path = _split_key(header.group(2))
            if header.group(1) == "[[":
                index = counters.get(path, -1) + 1
                counters[path] = index
                table = path + (index,)
            else:
                # A sub-table of an array table belongs to its latest element.
                resolved: tuple = ()
                for part in path:
                    resolved += (part,)
                    if resolved in counters:
                        resolved += (counters[resolved],)
                table = resolved
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault(table + _split_key(key.group(1)), number)
            rest = line[key.end():]
            for quote in ('"""', "'''"):
                if rest.count(quote) == 1:
                    in_multiline = quote
    return lines


def locate(lines: dict[tuple, int], loc: tuple) -> int | None:
    """The line of loc, or of its nearest known ancestor."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
