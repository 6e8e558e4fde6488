"""URLs and the answers of the HTTP services Jamey reads (Prometheus, Alertmanager), made safe
to show: credentials in a URL's user info are hidden, an answer's body is cut to one short line.

``NoRedirectSession`` is the requests session of every such client: it never follows a
redirect, so a URL can only ever reach the host it names (a 3xx is an answer like any other).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

#: Longest excerpt of a foreign answer's body put in an error message.
MAX_EXCERPT = 200
_USERINFO_IN_TEXT = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")


def redact_url(url: str) -> str:
    """``url`` with any user info (``user:password@``) replaced by ``***@``; unchanged otherwise."""
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return redact_text(text)
    if "@" not in parts.netloc:
        return text
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def without_userinfo(url: str) -> str:
    """``url`` with its user info dropped (a link to show: the browser asks for credentials)."""
    parts = urlsplit(str(url))
    if "@" not in parts.netloc:
        return str(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def redact_text(text: str) -> str:
    """``text`` with the user info of every URL in it replaced by ``***@``."""
    return _USERINFO_IN_TEXT.sub(r"\1***@", str(text))


def excerpt(text: str | bytes, limit: int = MAX_EXCERPT) -> str:
    """A foreign answer's body as one line of at most ``limit`` characters, URLs redacted."""
    if isinstance(text, bytes):
        text = text[: limit * 8].decode("utf-8", "replace")
    line = " ".join(str(text)[: limit * 8].strip().strip('"').split())
    line = redact_text(line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


class NoRedirectSession(requests.Session):
    """A requests session that never follows redirects (``allow_redirects`` is always False)."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["allow_redirects"] = False
        return super().request(method, url, *args, **kwargs)
