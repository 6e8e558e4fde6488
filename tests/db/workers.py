"""Functions run in other processes by the database tests (importable by spawn)."""

from __future__ import annotations

from typing import Any

from jamey_engine.db import Database


def upgrade_together(url: str, barrier: Any) -> None:
    """Connect, wait for the other processes, then upgrade at the same moment (raises on failure)."""
    database = Database(url)
    try:
        barrier.wait(timeout=60)
        database.upgrade()
    finally:
        database.close()
