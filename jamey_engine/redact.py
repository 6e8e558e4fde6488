"""Secrets and local details kept out of what leaves a process: messages, logs, error bodies.

One helper each, used by every door: :func:`redact_url` hides the user info (``user:password@``)
of a URL (Prometheus, Alertmanager, Redis, database URLs, and mistyped ones), :func:`strip_userinfo`
drops it from a link a browser will open, and :func:`redact_paths` shortens absolute file paths to
their last part for answers sent to clients.
"""

from __future__ import annotations

import re

REDACTED = "***"
# ``scheme://userinfo@host``: whatever sits between ``//`` and the first ``@`` of the authority.
_USERINFO = re.compile(r"(?<=//)[^/?#@\s]*@")
# Its password: after the user name's ``:`` (the user name itself stays, as SQLAlchemy shows it).
_PASSWORD = re.compile(r"(?<=//)([^/?#@:\s]*):[^/?#@\s]*@")
# A mistyped URL without ``//`` (``redis:secret@host``): everything up to the ``@``.
_LEADING_USERINFO = re.compile(r"^[^/@\s]*@")
# An absolute path that is not part of a URL (``http://host/a/b`` is preceded by a host name).
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s'\"/:,;()]+/)+([^\s'\"/:,;()]*)")


def redact_url(url: object) -> str:
    """``url`` as text with the password of its user info replaced by ``***``
    (``redis://:***@host:6379/0``, ``postgresql://jamey:***@db/jamey``); a mistyped URL without
    ``//`` loses everything before its ``@``. Safe on any text: without user info it is unchanged."""
    text = str(url)
    redacted = _PASSWORD.sub(rf"\1:{REDACTED}@", text)
    if redacted == text and "//" not in text:
        redacted = _LEADING_USERINFO.sub(f"{REDACTED}@", text)
    return redacted


def strip_userinfo(url: str) -> str:
    """``url`` without its user info at all: for a link shown to a browser."""
    return _USERINFO.sub("", url)


def redact_paths(message: str) -> str:
    """``message`` with every absolute file path shortened to its last part (``…/backups``), for
    answers that leave the machine (a 5xx body). URLs are left alone."""
    return _ABSOLUTE_PATH.sub(lambda match: f"…/{match.group(1)}" if match.group(1) else "…/", message)
