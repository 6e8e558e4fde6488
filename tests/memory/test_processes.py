"""Several processes on one data dir: concurrent writers, visibility, lock waits, prune."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import wait_until

from jamey_engine.errors import Busy
from jamey_engine.fsutil import is_held
from jamey_engine.memory import MemoryStore
from memory.workers import hold_writer, store_many

SPAWN = multiprocessing.get_context("spawn")


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jamey_engine", "--data-dir", str(data_dir), "memory", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_two_processes_writing_to_one_layer_lose_nothing(memory_root: Path) -> None:
    store = MemoryStore(memory_root, lock_timeout=60.0)  # waits are the point here, not Busy
    store.sizes()
    start_at = time.time() + 2.0
    with SPAWN.Pool(2) as pool:
        pending = [
            pool.apply_async(store_many, (str(memory_root), "working", name, 30, start_at))
            for name in ("alpha", "beta")
        ]
        time.sleep(max(0.0, start_at - time.time()))
        mine = [store.store("working", f"parent number {i}").id for i in range(30)]
        theirs = [memory_id for result in pending for memory_id in result.get(timeout=120)]
    assert store.count("working") == 90
    for memory_id in mine + theirs:
        store.get("working", memory_id)
    store.close()


def test_a_commit_by_another_process_is_visible_to_a_reader_at_once(
    store: MemoryStore, data_dir: Path
) -> None:
    assert store.search("working", "*") == []
    result = _cli(data_dir, "store", "--layer", "working", "remembered elsewhere")
    assert result.returncode == 0, result.stderr
    memory_id = result.stdout.strip()
    assert [m.id for m in store.search("working", "elsewhere")] == [memory_id]


def test_a_writer_held_by_another_process_makes_store_wait_then_fail_busy(
    memory_root: Path, tmp_path: Path
) -> None:
    first = MemoryStore(memory_root, lock_timeout=0.5, wal=False)  # the commit-per-store path
    first.store("working", "before")
    first.close()  # releases our own writer, so only the other process holds the lock
    store = MemoryStore(memory_root, lock_timeout=0.5, wal=False)
    ready, release = tmp_path / "ready", tmp_path / "release"
    holder = SPAWN.Process(
        target=hold_writer, args=(str(store.layer_path("working")), str(ready), str(release))
    )
    holder.start()
    try:
        wait_until(ready.exists, 30.0, "the other process taking the writer lock", every=0.01)
        started = time.monotonic()
        with pytest.raises(Busy, match="layer 'working' is being written by another process; try again"):
            store.store("working", "refused")
        assert time.monotonic() - started >= 0.5  # it waited the whole lock timeout first
        assert store.count("working") == 1
    finally:
        release.touch()
        holder.join(timeout=30)
    store.store("working", "after the other process let go")
    assert store.count("working") == 2
    store.close()


def test_with_the_log_a_writer_held_elsewhere_fails_only_the_flush_busy(
    memory_root: Path, tmp_path: Path
) -> None:
    store = MemoryStore(memory_root, lock_timeout=0.5, flush_interval=60)
    store.sizes()
    ready, release = tmp_path / "ready", tmp_path / "release"
    holder = SPAWN.Process(
        target=hold_writer, args=(str(store.layer_path("working")), str(ready), str(release))
    )
    holder.start()
    try:
        wait_until(ready.exists, 30.0, "the other process taking the writer lock", every=0.01)
        kept = store.store("working", "acknowledged while the index writer is held elsewhere")
        with pytest.raises(Busy, match="layer 'working' is being written by another process; try again"):
            store.flush_layer("working")
        assert store.count("working") == 1
    finally:
        release.touch()
        holder.join(timeout=30)
    assert store.flush_layer("working") == 1
    assert store.get("working", kept.id).content == kept.content
    store.close()


def test_a_store_waits_for_a_short_lock_and_then_succeeds(memory_root: Path, tmp_path: Path) -> None:
    store = MemoryStore(memory_root, lock_timeout=60.0, wal=False)  # the commit-per-store path
    store.sizes()
    ready, release = tmp_path / "ready", tmp_path / "release"
    waiting = memory_root / ".working.writers-waiting"
    holder = SPAWN.Process(
        target=hold_writer, args=(str(store.layer_path("working")), str(ready), str(release))
    )
    holder.start()
    stored: list[str] = []
    try:
        wait_until(ready.exists, 30.0, "the other process taking the writer lock", every=0.01)
        thread = threading.Thread(target=lambda: stored.append(store.store("working", "waited").id))
        thread.start()
        # The store is now queued behind the other process: it says so on the waiting flag.
        wait_until(
            lambda: waiting.exists() and is_held(waiting),
            30.0,
            "the store flagging that it waits",
            every=0.01,
        )
        assert thread.is_alive() and stored == []
        release.touch()
        thread.join(timeout=60)
        assert not thread.is_alive()
    finally:
        release.touch()
        holder.join(timeout=30)
    assert len(stored) == 1
    assert store.get("working", stored[0]).content == "waited"
    store.close()


def test_a_prune_in_another_process_loses_none_of_our_writes(store: MemoryStore, data_dir: Path) -> None:
    store.store_batch(
        "working", [{"content": f"old {i}", "timestamp": "2020-01-01T00:00:00Z"} for i in range(3000)]
    )
    stop = threading.Event()
    written: list[str] = []

    def writer() -> None:
        while not stop.is_set():
            written.append(store.store("working", f"fresh {len(written)}").id)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = _cli(data_dir, "prune", "--layer", "working", "--older-than", "30d", "--json", "--yes")
    finally:
        stop.set()
        thread.join()
    assert result.returncode == 0, result.stderr
    assert written
    assert store.count("working") == len(written)
    for memory_id in written:
        store.get("working", memory_id)


def test_every_commit_of_another_writer_is_seen_by_the_next_search(
    store: MemoryStore, memory_root: Path
) -> None:
    # The reader reloads only when the index changed: each of these back-to-back commits (by a
    # writer this store does not own, so only meta.json tells) must be found straight after.
    other = MemoryStore(memory_root, wal=False, lock_timeout=10.0)
    try:
        for number in range(25):
            memory_id = other.store("working", f"elsewhere{number} note").id
            assert [m.id for m in store.search("working", f"elsewhere{number}")] == [memory_id]
        assert store.count("working") == 25
    finally:
        other.close()
