"""API keys: their format, scopes, verification, management, and the rate limits charged to them.

Modules: ``keyformat`` (the token shape and checksum), ``scopes`` (what a key may do, one rule for
every front door), ``verify`` (the per-request hot path), ``status`` (a key's status and hygiene),
``manager`` (create, rotate, revoke: the lifecycle), ``audit`` (the trail of every change),
``ratelimit`` (per-key and global limits), ``ratelimit_decision`` (its outcome),
``ratelimit_storage`` (where the counters live: memory or Redis), ``ratelimit_lease`` and
``ratelimit_leased`` (leases of Redis counters, spent without a round trip). The limiter's names
are re-exported lazily (``limits`` is imported on first use, not with every key check).
"""

from typing import Any

from jamey_engine.keys.manager import CreatedKey, KeyInfo, KeyManager, normalize_scopes
from jamey_engine.keys.scopes import ADMIN, SCOPE_DESCRIPTIONS, SCOPES, Scope, has_scope, require_scope
from jamey_engine.keys.status import ACCEPTED_STATUSES, STATUSES, WORKING_STATUSES
from jamey_engine.keys.verify import VerifiedKey

_RATELIMIT_NAMES = ("Decision", "RateLimiter", "SteadyMemoryStorage")

__all__ = [
    "ACCEPTED_STATUSES",
    "ADMIN",
    "SCOPES",
    "SCOPE_DESCRIPTIONS",
    "STATUSES",
    "WORKING_STATUSES",
    "CreatedKey",
    "Decision",
    "KeyInfo",
    "KeyManager",
    "RateLimiter",
    "Scope",
    "SteadyMemoryStorage",
    "VerifiedKey",
    "has_scope",
    "normalize_scopes",
    "require_scope",
]


def __getattr__(name: str) -> Any:
    if name in _RATELIMIT_NAMES:
        from jamey_engine.keys import ratelimit

        return getattr(ratelimit, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
