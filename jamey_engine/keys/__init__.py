"""API keys: their format, scopes, verification, management, and the rate limits charged to them.

Modules: ``keyformat`` (the token shape and checksum), ``scopes`` (what a key may do, one rule for
every front door), ``verify`` (the per-request hot path), ``status`` (a key's status and hygiene),
``manager`` (create, rotate, revoke: the lifecycle), ``audit`` (the trail of every change) and ``ratelimit`` (per-key and global limits).
"""

from jamey_engine.keys.manager import CreatedKey, KeyInfo, KeyManager, normalize_scopes
from jamey_engine.keys.scopes import ADMIN, SCOPE_DESCRIPTIONS, SCOPES, Scope, has_scope, require_scope
from jamey_engine.keys.status import ACCEPTED_STATUSES, STATUSES, WORKING_STATUSES
from jamey_engine.keys.verify import VerifiedKey

__all__ = [
    "ACCEPTED_STATUSES",
    "ADMIN",
    "SCOPES",
    "SCOPE_DESCRIPTIONS",
    "STATUSES",
    "WORKING_STATUSES",
    "CreatedKey",
    "KeyInfo",
    "KeyManager",
    "Scope",
    "VerifiedKey",
    "has_scope",
    "normalize_scopes",
    "require_scope",
]
