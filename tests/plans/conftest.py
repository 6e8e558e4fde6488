"""Plan fixtures: an Engine on SQLite and PostgreSQL with old memories, and persona actors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.plans import Actor


def add_memories(engine: Engine, old: int = 5, new: int = 3, layer: str = "working") -> None:
    """``old`` memories 40 days old and ``new`` ones an hour old in ``layer``."""
    now = utcnow()
    items = [
        {"content": f"old memory {n}", "timestamp": now - timedelta(days=40, minutes=n)} for n in range(old)
    ]
    items += [
        {"content": f"new memory {n}", "timestamp": now - timedelta(hours=1, minutes=n)} for n in range(new)
    ]
    engine.memory.store_batch(layer, items)


def actor_of(engine: Engine, name: str, scopes: tuple[str, ...]) -> Actor:
    """A real key named ``name`` with ``scopes``, verified, as an actor."""
    created = engine.keys.create(name, scopes=scopes)
    return Actor.from_key(engine.keys.verify(created.key))


@pytest.fixture
def approvals_engine(db_settings: Settings) -> Iterator[Engine]:
    """An Engine whose settings ask a second person to approve prunes, restores and key revocations."""
    engine = Engine(db_settings.with_overrides(approvals=("prune", "restore", "key-revoke")))
    yield engine
    engine.close()
