"""Keep secrets out of logs, errors and reports.

Anything that may carry a secret (database password, tokens inside apprise URLs) is
registered here; a logging filter replaces every registered value with '***'.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit

_lock = threading.Lock()
_values: set[str] = set()

# user:password@ in any URL-looking string; apprise URLs put tokens in user info and path.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")


def register(value: str | None) -> None:
    if value and len(value) >= 4:
        with _lock:
            _values.add(value)


def register_url(url: str, user_is_secret: bool = True) -> None:
    """Register the password (and other credential parts) of a URL.

    A bare user name stands for a token in many alert URLs (dingtalk://TOKEN@…), but in a
    database URL it is just a user: masking `postgres` would also mask the word in
    `postgresql+psycopg://` and everywhere else. Database URLs pass user_is_secret=False."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    register(parts.password)
    if user_is_secret and parts.username and parts.password is None and "@" in (parts.netloc or ""):
        register(parts.username)  # token-as-username forms


def redact(text: str) -> str:
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    with _lock:
        values = sorted(_values, key=len, reverse=True)
    for v in values:
        text = text.replace(v, "***")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
