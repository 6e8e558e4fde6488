"""The small helpers under the store: ids, input checks, the switch lock's bounded wait."""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import pytest

from jamey_engine.errors import Busy, InvalidInput
from jamey_engine.memory import MemoryStore
from jamey_engine.memory.generations import Generations
from jamey_engine.memory.layers import check_layers
from jamey_engine.memory.model import check_memory_id, new_ids


def test_new_ids_are_distinct_version_4_uuids() -> None:
    ids = new_ids(1000)
    assert len(set(ids)) == 1000
    for text in ids[:50]:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and str(parsed) == text


def test_ids_from_many_threads_and_a_forked_child_never_repeat() -> None:
    # The ids come from a pool of random bytes: threads must not share a slice, and a forked
    # worker must not hand out the bytes its parent still holds.
    new_ids(1)  # the parent's pool is now full
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.close(read_end)
        os.write(write_end, "\n".join(new_ids(100)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        childs = pipe.read().split("\n")
    os.waitpid(child, 0)
    found: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [memory_id for _ in range(200) for memory_id in new_ids(3)]
        with lock:
            found.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(childs) == 100
    assert len(set(found)) == len(found) == 8 * 600
    assert not set(childs) & set(found)


def test_memory_ids_are_canonicalised() -> None:
    text = "1B4E28BA-2FA1-41D2-883F-0016D3CCA427"
    assert check_memory_id(text) == text.lower()


def test_layer_lists_are_checked_and_deduplicated() -> None:
    assert check_layers(None)[0] == "short_term"
    assert check_layers(["working", "working"]) == ("working",)
    assert check_layers("episodic") == ("episodic",)
    with pytest.raises(InvalidInput, match="at least one layer"):
        check_layers([])


def test_a_switch_held_elsewhere_makes_writes_fail_busy_after_the_timeout(memory_root: Path) -> None:
    store = MemoryStore(memory_root, lock_timeout=0.3, wal=False)  # the commit-per-store path
    store.sizes()
    other = Generations(memory_root, lock_timeout=5)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with other.exclusive("test"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        held.wait(5)
        with pytest.raises(Busy, match="being switched to a new generation"):
            store.store("working", "waits for the switch")
    finally:
        release.set()
        thread.join()
    store.store("working", "after the switch")
    assert store.count("working") == 1
    store.close()


def test_with_the_log_a_held_switch_delays_only_the_flush_which_fails_busy(memory_root: Path) -> None:
    store = MemoryStore(memory_root, lock_timeout=0.3, flush_interval=60)
    store.sizes()
    other = Generations(memory_root, lock_timeout=5)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with other.exclusive("test"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        held.wait(5)
        kept = store.store("working", "durable in the log while the switch is held")
        with pytest.raises(Busy, match="being switched to a new generation"):
            store.flush()
        assert store.get("working", kept.id).content == kept.content
    finally:
        release.set()
        thread.join()
    store.flush()
    assert store.count("working") == 1
    store.close()
    reopened = MemoryStore(memory_root)
    assert reopened.get("working", kept.id).content == kept.content
    reopened.close()
