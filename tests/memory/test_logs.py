"""The store's write-ahead logs (memory/logs.py) as the store exposes them."""

from __future__ import annotations

from pathlib import Path

from jamey_engine.memory import MemoryStore


def test_the_store_counts_its_own_flushes_and_replays_a_layer_once(memory_root: Path) -> None:
    store = MemoryStore(memory_root, flush_interval=3600)
    try:
        assert not store.is_warm("working")
        store.store("working", "counted once flushed")
        assert (store.logs.flushes, store.logs.flush_failures, store.logs.flush_seconds) == (0, 0, 0.0)
        assert store.flush_layer("working") == 1
        assert store.logs.flushes == 1 and store.logs.flush_seconds > 0 and store.logs.flush_failures == 0
        assert store.flush_layer("working") == 0  # nothing left: not counted
        assert store.logs.flushes == 1
        store.search("working", "counted")
        assert store.is_warm("working")
    finally:
        store.close()


def test_a_store_without_the_log_never_flushes(memory_root: Path) -> None:
    store = MemoryStore(memory_root, wal=False)
    try:
        store.store("working", "committed at once")
        assert store.flush_layer("working") == 0
        assert store.logs.flushes == 0
    finally:
        store.close()
