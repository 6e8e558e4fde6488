"""Seeded data for the runbook and notebook tests: real indexes with old and new memories, and a key."""

from __future__ import annotations

from datetime import timedelta

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine

OLD_PER_LAYER = 4
NEW_PER_LAYER = 6
SEEDED_LAYERS = ("working", "episodic")


def seed(engine: Engine) -> None:
    """Old memories (40+ days) and new ones (under a week) in two layers, one admin key."""
    seed_memories(engine)
    engine.keys.create("ops", scopes=("admin",))


def seed_memories(engine: Engine) -> None:
    """Old memories (40+ days) and new ones (one a day, today first) in two layers."""
    now = utcnow()
    for layer in SEEDED_LAYERS:
        old = [
            {"content": f"{layer} old note {i} about the harbour", "timestamp": now - timedelta(days=40 + i)}
            for i in range(OLD_PER_LAYER)
        ]
        new = [
            {"content": f"{layer} new note {i} about the harbour", "timestamp": now - timedelta(days=i)}
            for i in range(NEW_PER_LAYER)
        ]
        engine.memory.store_batch(layer, old + new)


class Lines(list[str]):
    """Collects what a runbook says."""

    def __call__(self, line: str) -> None:
        self.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self)
