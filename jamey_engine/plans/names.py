"""The names the plan contract shares with every door and with the settings: actions and statuses.

Kept free of imports so that ``jamey_engine.config`` can check ``JAMEY_APPROVALS`` against it.
"""

from __future__ import annotations

ACTIONS: tuple[str, ...] = (
    "prune",
    "dedupe",
    "retention",
    "restore",
    "backup-delete",
    "key-revoke",
    "key-rotate",
    "backup",
    "memory-flush",
)
STATUSES: tuple[str, ...] = (
    "planned",
    "pending_approval",
    "approved",
    "rejected",
    "applying",
    "applied",
    "failed",
    "expired",
    "stale",
)
# A plan in one of these may still be approved or applied; past its expiry it becomes ``expired``.
OPEN_STATUSES: tuple[str, ...] = ("planned", "pending_approval", "approved")
