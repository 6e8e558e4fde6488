"""One error hierarchy for every front door.

Each error carries a user-facing message and, where one fits, an HTTP status.
The service turns them into ``{"error": ..., "status": N}``, the CLI into one
line and a non-zero exit code, the workbench into ``st.error``, and notebooks
print them plainly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

#: Why a presented API key is refused: the ``reason`` of :class:`KeyRejected`, and (with ``ok``)
#: the ``result`` label of ``api_key_verifications_total``.
RejectReason = Literal["missing", "malformed", "unknown", "expired", "revoked"]
REJECT_REASONS: tuple[RejectReason, ...] = get_args(RejectReason)


class JameyError(Exception):
    """Base of every error a user may see. ``str(err)`` is the message."""

    status: int = 500
    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(JameyError):
    """The caller sent something we cannot use; nothing was changed."""

    status = 400
    exit_code = 2


class ConfigError(InvalidInput):
    """A setting (environment variable or flag) has an invalid value."""

    def __init__(self, variable: str, value: object, reason: str) -> None:
        """``value`` None (a secret's value) is left out of the message; any other is quoted with
        the user info of a URL in it hidden, since the message may be shown before sign-in."""
        from jamey_engine.redact import redact_url

        shown = None if value is None else redact_url(value)
        named = variable if shown is None else f"{variable}={shown!r}"
        super().__init__(f"Setting {named} is invalid: {reason}")
        self.variable = variable
        self.value = shown


class KeyRejected(JameyError):
    """Authentication failed. ``reason`` is one of REJECT_REASONS: missing, malformed, unknown,
    expired, revoked; or ``idle``: a workbench session signed out for inactivity (its key is
    fine, so that is never a key verification's result)."""

    status = 401

    def __init__(self, reason: RejectReason | Literal["idle"], message: str | None = None) -> None:
        super().__init__(message or f"API key rejected: {reason}")
        self.reason = reason


class Forbidden(JameyError):
    """Authenticated, but the key lacks the scope the action needs."""

    status = 403


class NotFound(JameyError):
    """The named thing (memory, key, backup) does not exist."""

    status = 404


class Conflict(JameyError):
    """The request clashes with the current state (a duplicate name, say)."""

    status = 409


class PhraseMismatch(Conflict):
    """A confirm phrase that is not the plan's: nothing was changed. A conflict with the plan over
    HTTP (the request itself is well formed), bad input (exit 2) on the CLI."""

    exit_code = 2


class PayloadTooLarge(InvalidInput):
    """A body or a field is over its configured bound."""

    status = 413


class RateLimited(JameyError):
    """Over a rate limit; retry after ``retry_after`` seconds."""

    status = 429

    def __init__(self, message: str, retry_after: int, scope: str = "key") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.scope = scope


class Busy(JameyError):
    """A resource (an index writer lock, the database) stayed busy past the bounded wait."""

    status = 503


class Unavailable(JameyError):
    """A backend we depend on (Prometheus, Redis, a data directory) cannot be reached or used."""

    status = 503


class StorageCorrupt(JameyError):
    """Data on disk (an index directory) is missing or damaged; ``path`` names it."""

    status = 500

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class BackupCorrupt(JameyError):
    """A backup archive failed verification; ``file`` names the damaged member."""

    status = 422

    def __init__(self, message: str, file: str | None = None) -> None:
        super().__init__(message)
        self.file = file


class DataDirNotPrivate(JameyError):
    """The data dir is group- or world-accessible; ``path`` and ``mode`` name what was found."""

    status = 500
    exit_code = 1

    def __init__(self, path: Path, mode: int) -> None:
        super().__init__(
            f"data directory {path} has mode {mode:04o}, so group or others can access it; "
            f"fix it with: chmod 700 {path} (or set JAMEY_ALLOW_SHARED_DATA_DIR=1 when access "
            "is managed with groups on purpose)"
        )
        self.path = path
        self.mode = mode


class BackupLocked(JameyError):
    """An encrypted backup cannot be read: no identity (or passphrase) is set, or none that
    is set can decrypt it. Nothing was changed."""

    status = 422


class BackupUnsigned(JameyError):
    """A backup carries no manifest signature (made before backups were signed): restore,
    verify and pull refuse it unless an admin passes ``--trust-unsigned``. Nothing was changed."""

    status = 422


class LogCorrupt(StorageCorrupt):
    """A memory layer's write-ahead log is damaged before its tail; the message names the layer,
    the segment file and the byte offset. Nothing is served silently without the damaged record."""
