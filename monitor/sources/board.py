"""Board pages → RawPost list, by configuration alone: no code per site (pure).

JSON boards (12345 portals, 领导留言板 APIs): a dotted path to the item list and a field
map. HTML list pages (Tieba, Discuz!, notice lists): a CSS selector per item and per field.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from urllib.parse import urljoin

from monitor.config import SourceConfig
from monitor.sources import RawPost
from monitor.sources.boardtime import parse_board_time
from monitor.sources.feed import ParseError, html_to_text

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.]+)\}")


def _dig(value, path: str):
    """'data.list.0.title' into nested dicts and lists; None where the path breaks."""
    if path in ("", "."):
        return value
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.lstrip("-").isdigit():
            index = int(part)
            value = value[index] if -len(value) <= index < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value


def _json_field(item: dict, spec: str | None):
    if not spec:
        return None
    if "{" in spec:
        def sub(m):
            v = _dig(item, m.group(1))
            return "" if v is None else str(v)

        return _PLACEHOLDER.sub(sub, spec)
    return _dig(item, spec)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    return html_to_text(str(value))


def _replied(cfg: SourceConfig, status: str | None, text: str | None) -> bool | None:
    if cfg.fields.reply_status is None and cfg.fields.reply_text is None:
        return None  # this board shows no reply state
    if status:
        return any(word in status for word in cfg.replied)
    return bool(text)


def _post(cfg: SourceConfig, page_url: str, now: datetime, raw_id, title, body, author, published, url, status, reply, reply_time) -> RawPost:
    title, body = _text(title), _text(body)
    url = urljoin(page_url, str(url).strip()) if url else None
    external_id = str(raw_id).strip() if raw_id not in (None, "") else (url or "")
    if not external_id:
        external_id = "sha256:" + hashlib.sha256(f"{title}\n{body}".encode()).hexdigest()
    status_text = _text(status) or None
    reply_text = _text(reply) or None
    replied = _replied(cfg, status_text, reply_text)
    return RawPost(
        external_id=external_id[:480],
        url=url,
        title=title,
        body=body,
        author=_text(author) or None,
        published_at=parse_board_time(published, now, cfg.time_formats) if published not in (None, "") else None,
        reply_status=status_text,
        replied=replied,
        reply_text=reply_text,
        reply_at=parse_board_time(reply_time, now, cfg.time_formats) if reply_time not in (None, "") else None,
    )


def parse_json_board(text: str, cfg: SourceConfig, page_url: str, now: datetime) -> list[RawPost]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise ParseError(f"不是合法的 JSON：{e.msg}（第 {e.lineno} 行第 {e.colno} 列）") from None
    items = _dig(document, cfg.items or "")
    if not isinstance(items, list):
        raise ParseError(f"JSON 中路径「{cfg.items}」不是条目列表（页面结构可能已改变）")
    f = cfg.fields
    posts = []
    for item in items:
        if not isinstance(item, dict):
            continue
        posts.append(_post(
            cfg, page_url, now,
            _json_field(item, f.id), _json_field(item, f.title), _json_field(item, f.body), _json_field(item, f.author),
            _json_field(item, f.published), _json_field(item, f.url), _json_field(item, f.reply_status),
            _json_field(item, f.reply_text), _json_field(item, f.reply_time),
        ))
    return [p for p in posts if p.title or p.body or cfg.detail_body]


def _css(item, spec: str | None) -> str | None:
    """A field from an HTML item: selector text, `::attr(x)`, or `@x` for the item's own attribute."""
    if not spec:
        return None
    if spec.startswith("@"):
        return item.attrib.get(spec[1:])
    if spec.startswith("::attr(") and spec.endswith(")"):
        return item.attrib.get(spec[7:-1])
    if "::attr(" in spec:
        return item.css(spec).get()
    # The first matching element only: a list row often repeats a class (author, last replier).
    own_text = spec.endswith("::text")
    found = item.css(spec[: -len("::text")] if own_text else spec)
    if not found:
        return None
    texts = found[0].css("::text" if own_text else "*::text").getall()
    return " ".join(t.strip() for t in texts if t.strip()) or None


def parse_html_board(text: str, cfg: SourceConfig, page_url: str, now: datetime) -> list[RawPost]:
    from parsel import Selector

    try:
        items = Selector(text=text).css(cfg.items)
    except Exception as e:  # a bad selector in config, or markup lxml cannot read
        raise ParseError(f"无法按选择器「{cfg.items}」解析页面：{e}") from None
    f = cfg.fields
    posts = []
    for item in items:
        posts.append(_post(
            cfg, page_url, now,
            _css(item, f.id), _css(item, f.title), _css(item, f.body), _css(item, f.author), _css(item, f.published),
            _css(item, f.url), _css(item, f.reply_status), _css(item, f.reply_text), _css(item, f.reply_time),
        ))
    return [p for p in posts if p.title or p.body or cfg.detail_body]


def parse_detail_body(text: str, selector: str) -> str:
    from parsel import Selector

    found = Selector(text=text).css(selector)
    if not found:
        raise ParseError(f"详情页中没有找到「{selector}」")
    return html_to_text(" \n".join(found.getall()))
