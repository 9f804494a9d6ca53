"""Bytes to text for feeds and pages. Bytes win over a wrong declaration: a page that
declares GB2312 but is valid UTF-8 is UTF-8 (real 人民网 pages do this); otherwise the
declaration, then GB18030 (the superset of GB2312/GBK) for undeclared Chinese pages."""

from __future__ import annotations

import codecs
import re

_GB = {"gb2312", "gbk", "gb18030", "x-gbk", "cp936", "euc-cn", "gb_2312-80", "csgb2312", "x-euc-cn"}
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._\-]+)", re.I)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9._\-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._\-]+)["']""")


def codec(name: str | None) -> str | None:
    if not name:
        return None
    name = name.lower()
    if name in _GB:
        return "gb18030"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def declared(body: bytes, content_type: str | None) -> str | None:
    head = body[:4096].lstrip()
    for pattern in (_XML_ENCODING, _META_CHARSET):
        m = pattern.search(head)
        if m:
            return m.group(1).decode("ascii")
    m = _HEADER_CHARSET.search(content_type or "")
    return m.group(1) if m else None


def decode(body: bytes, content_type: str | None = None) -> str:
    if body.startswith(codecs.BOM_UTF8):
        return body[3:].decode("utf-8", "replace")
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return body.decode("utf-16", "replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    encoding = codec(declared(body, content_type))
    # Undeclared (or wrongly "UTF-8"/Latin-1) non-UTF-8 bytes on Chinese sites are nearly always GB-family.
    if encoding in (None, "utf-8", "ascii", "latin-1", "cp1252"):
        encoding = "gb18030"
    return body.decode(encoding, "replace")
