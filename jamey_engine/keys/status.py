"""What a key is now: its status, the rule that derives it, and what may be shown about it.

The statuses are declared once, as the Literal type :class:`KeyInfo` carries, with their tuples
derived from it; the hygiene flags of the keys still in use (:func:`working_hygiene`) read the
same declaration.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from jamey_engine import thresholds
from jamey_engine.keys.usage import hygiene_flags
from jamey_engine.models import ApiKey

KeyStatus = Literal["active", "expiring", "rotating", "expired", "revoked"]
STATUSES: tuple[KeyStatus, ...] = get_args(KeyStatus)
#: Keys in use: they may be rotated, they hold their name (no second key in use may take it),
#: and the hygiene flags (stale, due for rotation) are about them.
WORKING_STATUSES: tuple[KeyStatus, ...] = ("active", "expiring")
#: Keys that still authenticate: the working ones and a rotated one inside its grace period.
#: Revoking stops any of them; ``expired`` and ``revoked`` are final.
ACCEPTED_STATUSES: tuple[KeyStatus, ...] = (*WORKING_STATUSES, "rotating")
EXPIRING_WITHIN = thresholds.KEY_EXPIRING_WITHIN


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a key: never its secret or hash.

    ``status`` is one of active, expiring (expires within 7 days), rotating (replaced, still
    accepted until ``grace_until``), expired, revoked. ``revoked_at`` is when it stopped working
    (a rotated key's grace end, once passed). ``rate_limit`` is the effective limit.
    """

    id: str
    name: str
    scopes: tuple[str, ...]
    rate_limit: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    status: KeyStatus
    rotated_to: str | None
    rotated_from: str | None = None
    grace_until: datetime | None = None
    custom_rate_limit: bool = False
    legacy: bool = False


@dataclass(frozen=True)
class CreatedKey:
    """A new key: ``key`` is the plaintext, shown once and never again."""

    key: str
    info: KeyInfo

    @property
    def id(self) -> str:
        return self.info.id

    def __repr__(self) -> str:  # never let the plaintext reach a log line by accident
        return f"CreatedKey(key=<hidden>, info={self.info!r})"


def key_status(row: ApiKey, now: datetime) -> KeyStatus:
    """The status of ``row`` at ``now`` (see KeyInfo)."""
    if (row.revoked_at is not None and row.revoked_at <= now) or (
        row.grace_until is not None and row.grace_until <= now
    ):
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    if row.grace_until is not None:
        return "rotating"
    if row.expires_at is not None and row.expires_at - now <= EXPIRING_WITHIN:
        return "expiring"
    return "active"


def working_hygiene(
    infos: Iterable[KeyInfo], now: datetime, stale_days: float, rotate_days: float
) -> list[tuple[KeyInfo, tuple[str, ...]]]:
    """Every working key of ``infos`` with its hygiene flags (see ``keys.usage.FLAGS``): stale
    after ``stale_days`` unused, due for rotation after ``rotate_days``."""
    return [
        (
            info,
            hygiene_flags(info.created_at, info.last_used_at, info.expires_at, now, stale_days, rotate_days),
        )
        for info in infos
        if info.status in WORKING_STATUSES
    ]
