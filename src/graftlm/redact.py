"""Credentials never leave the process: `user:password@` is cut out of every URL that is shown or stored.

A teacher URL may carry credentials (`http://user:password@host/v1`); the HTTP client sends them as
basic auth and uses the bare URL everywhere else. `strip_credentials` cleans any text (log lines,
error messages, manifests), and `RedactingFilter` applies it to every log record."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote, urlsplit

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s@\"']*@")


def strip_credentials(text: str) -> str:
    """`text` with the `user:password@` part of every URL in it removed."""
    return _USERINFO.sub(r"\1", text) if "@" in text else text


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """(`url` without its credentials, (user, password) or None)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    return strip_credentials(url), (unquote(parts.username or ""), unquote(parts.password or ""))


class RedactingFilter(logging.Filter):
    """Strips URL credentials from a log record's message (its arguments included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = strip_credentials(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
