"""The names the plan contract shares with every door and with the settings: actions and statuses.

Each is declared once, as the Literal type the HTTP schemas use, with its tuple of values derived
from it. Kept free of engine imports so that ``jamey_engine.config`` can check ``JAMEY_APPROVALS`` against it.
"""

from __future__ import annotations

from typing import Literal, get_args

ActionName = Literal[
    "prune",
    "dedupe",
    "retention",
    "restore",
    "backup-delete",
    "key-revoke",
    "key-rotate",
    "backup",
    "memory-flush",
]
ACTIONS: tuple[str, ...] = get_args(ActionName)
StatusName = Literal[
    "planned",
    "pending_approval",
    "approved",
    "rejected",
    "applying",
    "applied",
    "failed",
    "expired",
    "stale",
]
STATUSES: tuple[str, ...] = get_args(StatusName)
# A plan in one of these may still be approved or applied; past its expiry it becomes ``expired``.
OPEN_STATUSES: tuple[str, ...] = ("planned", "pending_approval", "approved")
