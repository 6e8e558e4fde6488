"""The store's write-ahead logs (memory/logs.py) as the store exposes them."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

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


def test_a_layer_is_replayed_once_per_process_however_many_first_callers(memory_root: Path) -> None:
    writer = MemoryStore(memory_root, flush_interval=3600)  # its records stay in the log
    reader = MemoryStore(memory_root, flush_interval=3600)
    try:
        writer.store("working", "left in the log by another store")
        replays: list[str] = []
        flush_layer = reader.logs.flush_layer

        def counted(layer: str) -> Any:
            replays.append(layer)
            return flush_layer(layer)

        reader.logs.flush_layer = counted  # type: ignore[method-assign]
        start = threading.Barrier(8)
        found: list[list[str]] = []

        def first_search() -> None:
            start.wait()
            found.append([m.content for m in reader.search("working", "log")])

        callers = [threading.Thread(target=first_search) for _ in range(8)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(timeout=60)
        assert found == [["left in the log by another store"]] * 8, "each saw the replayed record"
        assert replays == ["working"], "eight first callers, one replay"
        writer.store("working", "logged after the replay")
        reader.search("working", "log")
        assert replays == ["working"], "a layer already serving is not replayed again"
    finally:
        reader.close()
        writer.close()


def test_a_store_without_the_log_never_flushes(memory_root: Path) -> None:
    store = MemoryStore(memory_root, wal=False)
    try:
        store.store("working", "committed at once")
        assert store.flush_layer("working") == 0
        assert store.logs.flushes == 0
    finally:
        store.close()
