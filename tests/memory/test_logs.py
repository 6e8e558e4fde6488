"""The store's write-ahead logs (memory/logs.py) as the store exposes them."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from jamey_engine.errors import NotFound
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


def test_stores_from_an_event_loop_are_in_the_log_when_their_waiters_resolve(memory_root: Path) -> None:
    """A store over HTTP awaits an asyncio future that the log's thread resolves, for a whole
    group commit, on the loop (log_writer.add_waiting): each resolved store is on disk."""
    store = MemoryStore(memory_root, flush_interval=3600)  # its records stay in the log
    try:

        async def store_many() -> list[str]:
            loop = asyncio.get_running_loop()
            queued = [store.store_nowait("working", f"memory {n}", loop=loop) for n in range(32)]
            assert all(isinstance(committed, asyncio.Future) for _, committed in queued)
            await asyncio.gather(*(committed for _, committed in queued))
            return [memory.id for memory, _ in queued]

        ids = asyncio.run(store_many())
        logged = {i for record in store.logs.layer_log("working").read(1 << 62) for i, _, _ in record.adds}
        assert set(ids) <= logged
        assert [store.get("working", i).content for i in ids] == [f"memory {n}" for n in range(32)]
    finally:
        store.close()


def test_a_store_from_an_event_loop_given_up_before_its_commit_is_not_written(memory_root: Path) -> None:
    store = MemoryStore(memory_root, flush_interval=3600)
    try:
        store.store("working", "the log's thread is up")
        writer = store.logs.log_writer("working")

        async def give_one_up() -> tuple[str, str]:
            loop = asyncio.get_running_loop()
            with writer._cond:  # the thread cannot take the queued store until the cancel is done
                abandoned, committed = store.store_nowait("working", "nobody waits for this one", loop=loop)
                assert committed.cancel()
            kept, done = store.store_nowait("working", "stored after the cancelled one", loop=loop)
            await asyncio.wait_for(done, 30)  # a thread broken by the cancelled waiter never answers
            return abandoned.id, kept.id

        abandoned, kept = asyncio.run(give_one_up())
        assert store.get("working", kept).content == "stored after the cancelled one"
        with pytest.raises(NotFound):
            store.get("working", abandoned)
        logged = {i for record in store.logs.layer_log("working").read(1 << 62) for i, _, _ in record.adds}
        assert kept in logged and abandoned not in logged
    finally:
        store.close()
