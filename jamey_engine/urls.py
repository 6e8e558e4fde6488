"""URLs and the answers of the HTTP services Jamey reads (Prometheus, Alertmanager), made safe
to show: an answer's body is cut to one short line with URLs' passwords hidden (by
``jamey_engine.redact``, the one place that hides them).

``NoRedirectSession`` is the requests session of every such client: it never follows a
redirect, so a URL can only ever reach the host it names (a 3xx is an answer like any other).
"""

from __future__ import annotations

from typing import Any

import requests

from jamey_engine.redact import redact_url

#: Longest excerpt of a foreign answer's body put in an error message.
MAX_EXCERPT = 200


def excerpt(text: str | bytes, limit: int = MAX_EXCERPT) -> str:
    """A foreign answer's body as one line of at most ``limit`` characters, URLs redacted."""
    if isinstance(text, bytes):
        text = text[: limit * 8].decode("utf-8", "replace")
    line = " ".join(str(text)[: limit * 8].strip().strip('"').split())
    line = redact_url(line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


class NoRedirectSession(requests.Session):
    """A requests session that never follows redirects (``allow_redirects`` is always False)."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["allow_redirects"] = False
        return super().request(method, url, *args, **kwargs)
