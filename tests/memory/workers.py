"""Functions run in other processes by the multi-process tests (importable by spawn)."""

from __future__ import annotations

import time
from pathlib import Path

import tantivy

from jamey_engine.memory import MemoryStore


def store_many(root: str, layer: str, prefix: str, count: int, start_at: float) -> list[str]:
    """Store ``count`` memories one by one (as a separate process would) and return their ids."""
    store = MemoryStore(Path(root), lock_timeout=30.0)
    try:
        time.sleep(max(0.0, start_at - time.time()))
        return [store.store(layer, f"{prefix} number {i}").id for i in range(count)]
    finally:
        store.close()


def hold_writer(index_path: str, ready: str, seconds: float) -> None:
    """Open a tantivy writer on ``index_path`` and keep it (the lock) for ``seconds``."""
    index = tantivy.Index.open(index_path)
    writer = index.writer(15_000_000, 1)
    Path(ready).touch()
    time.sleep(seconds)
    writer.wait_merging_threads()
