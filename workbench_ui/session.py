"""The workbench session: sign-in, idle expiry and the key check before every action.

The Streamlit pages hold a :class:`WorkbenchSession` in their session state and call
:meth:`WorkbenchSession.authorize` before every action, so a key revoked or expired mid-session
stops working at the next click, and the action is audited with the key's name as its actor.
Nothing here needs Streamlit, so it is tested directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from jamey_engine.durations import format_duration, utcnow
from jamey_engine.errors import Forbidden, KeyRejected
from jamey_engine.keys.scopes import has_scope

ADMIN_SCOPE = "admin"
# The scope a key needs to sign in at all; each page and action then asks for its own.
SIGN_IN_SCOPE = "ops:read"


class _Verified(Protocol):
    id: str
    name: str
    scopes: tuple[str, ...]


class VerifiesKeys(Protocol):
    """What the session needs from :class:`jamey_engine.keys.KeyManager`."""

    def verify(self, plaintext: str) -> Any: ...


class SessionExpired(KeyRejected):
    """The workbench session was idle longer than ``JAMEY_WORKBENCH_IDLE_TIMEOUT``."""

    def __init__(self, idle_timeout: timedelta) -> None:
        super().__init__(
            "idle",
            f"Signed out after {format_duration(idle_timeout)} without activity; sign in again.",
        )


def _require(verified: _Verified, needs: str) -> None:
    if not has_scope(tuple(verified.scopes), needs):
        raise Forbidden(
            f"Key {verified.name!r} has scopes {', '.join(verified.scopes) or '(none)'}; this needs "
            f"the {needs} scope (jamey keys create --name <name> --scope {needs})."
        )


@dataclass
class WorkbenchSession:
    """One signed-in browser session. The plaintext key lives only in this object, in memory.

    ``actor`` is the key's name: every audited action taken through the workbench is
    recorded under it.
    """

    key: str = field(repr=False)
    key_id: str
    actor: str
    idle_timeout: timedelta
    signed_in_at: datetime
    last_active: datetime
    scopes: tuple[str, ...] = ()
    rate_limit: str = ""  # the key's effective limit (each action is charged to it)

    @classmethod
    def sign_in(
        cls, keys: VerifiesKeys, plaintext: str, idle_timeout: timedelta, now: datetime | None = None
    ) -> WorkbenchSession:
        """Verify ``plaintext`` and start a session for it.

        Raises KeyRejected (missing, malformed, unknown, expired, revoked) when the key is not
        valid, and Forbidden when it is valid but lacks the sign-in scope (ops:read or above).
        """
        plaintext = (plaintext or "").strip()
        if not plaintext:
            raise KeyRejected("missing", "Enter an API key to sign in.")
        verified = keys.verify(plaintext)
        _require(verified, SIGN_IN_SCOPE)
        moment = now or utcnow()
        return cls(
            key=plaintext,
            key_id=str(verified.id),
            actor=str(verified.name),
            idle_timeout=idle_timeout,
            signed_in_at=moment,
            last_active=moment,
            scopes=tuple(verified.scopes),
            rate_limit=str(getattr(verified, "rate_limit", "") or ""),
        )

    def can(self, scope: str) -> bool:
        """True when the key held scopes granting ``scope`` when last checked (for hiding what
        the engine would refuse; every action still checks again through :meth:`authorize`)."""
        return has_scope(self.scopes, scope)

    def expired(self, now: datetime | None = None) -> bool:
        """True once the session has been idle for longer than its idle timeout."""
        return (now or utcnow()) - self.last_active > self.idle_timeout

    def touch(self, now: datetime | None = None) -> None:
        """Record activity. Raises SessionExpired if the session had already gone idle."""
        moment = now or utcnow()
        if self.expired(moment):
            raise SessionExpired(self.idle_timeout)
        self.last_active = moment

    def check(self, keys: VerifiesKeys, now: datetime | None = None, needs: str = SIGN_IN_SCOPE) -> str:
        """Check the session and its key without counting as activity (an auto-refresh);
        return the actor name. Raises like :meth:`authorize`."""
        if self.expired(now or utcnow()):
            raise SessionExpired(self.idle_timeout)
        verified = keys.verify(self.key)
        self.scopes = tuple(verified.scopes)
        self.actor = str(verified.name)
        self.rate_limit = str(getattr(verified, "rate_limit", "") or "")
        _require(verified, SIGN_IN_SCOPE)
        _require(verified, needs)
        return self.actor

    def authorize(self, keys: VerifiesKeys, now: datetime | None = None, needs: str = SIGN_IN_SCOPE) -> str:
        """Check the session and the key again before an action (or a page view), count
        it as activity, and return the actor name.

        Raises SessionExpired when idle too long, KeyRejected when the key was revoked or has
        expired since sign-in, and Forbidden when it lacks the sign-in scope or ``needs``.
        """
        moment = now or utcnow()
        actor = self.check(keys, moment, needs)
        self.last_active = moment
        return actor
