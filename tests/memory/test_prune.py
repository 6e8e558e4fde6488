"""Prune: compaction into a new generation frees disk; dry runs and repeats change nothing."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine

from jamey_engine.durations import utcnow
from jamey_engine.errors import Busy, InvalidInput
from jamey_engine.memory import MemoryStore
from jamey_engine.memory.wal import is_log_file


def _half_old(store: MemoryStore, layer: str = "working", count: int = 4000) -> None:
    now = utcnow()
    items = []
    for i in range(count):
        age = timedelta(days=60) if i % 2 else timedelta(hours=1)
        items.append(
            {"content": f"memory {i} about disk and latency on node {i % 97}", "timestamp": now - age}
        )
    store.store_batch(layer, items)


def test_prune_deletes_old_memories_and_shrinks_the_directory(store: MemoryStore) -> None:
    _half_old(store)
    before = store.layer_size("working")
    [result] = store.prune(timedelta(days=30), ["working"])
    assert result.deleted == 2000
    assert result.dry_run is False
    assert result.bytes_before == before.bytes
    after = store.layer_size("working")
    assert after.documents == 2000
    assert result.bytes_after == after.bytes
    assert after.bytes <= 0.6 * before.bytes, (before, after)
    assert all(m.timestamp > utcnow() - timedelta(days=30) for m in store.search("working", "*", limit=1000))


def test_prune_removes_the_old_generation_directory(store: MemoryStore) -> None:
    _half_old(store, count=100)
    old = store.layer_path("working")
    store.prune(timedelta(days=30), ["working"])
    assert not old.exists()
    assert store.layer_path("working") != old
    assert [p.name for p in (store.root / "working").iterdir() if not is_log_file(p.name)] == [
        store.layer_path("working").name
    ]


def test_prune_dry_run_changes_nothing(store: MemoryStore) -> None:
    _half_old(store, count=200)
    path, before = store.layer_path("working"), store.layer_size("working")
    [result] = store.prune(timedelta(days=30), ["working"], dry_run=True)
    assert (result.deleted, result.dry_run, result.bytes_before) == (100, True, before.bytes)
    assert result.bytes_after < result.bytes_before
    assert store.layer_path("working") == path
    assert store.layer_size("working") == before


def test_prune_twice_is_a_no_op_the_second_time(store: MemoryStore) -> None:
    _half_old(store, count=200)
    store.prune(timedelta(days=30))
    path, size = store.layer_path("working"), store.layer_size("working")
    results = store.prune(timedelta(days=30))
    assert [r.deleted for r in results] == [0] * 5
    assert all(r.bytes_before == r.bytes_after for r in results)
    assert store.layer_path("working") == path
    assert store.layer_size("working") == size


def test_prune_of_all_layers_reports_each(store: MemoryStore) -> None:
    _half_old(store, "episodic", count=10)
    results = {r.layer: r.deleted for r in store.prune(timedelta(days=30))}
    assert results == {"short_term": 0, "long_term": 0, "working": 0, "episodic": 5, "semantic": 0}


def test_writes_made_during_a_prune_are_never_lost(store: MemoryStore) -> None:
    _half_old(store, count=20_000)
    stop = threading.Event()
    stored: list[str] = []

    def writer() -> None:
        while not stop.is_set():
            stored.append(store.store("working", f"written during prune {len(stored)}").id)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        [result] = store.prune(timedelta(days=30), ["working"])
    finally:
        stop.set()
        thread.join()
    assert result.deleted == 10_000
    assert len(stored) > 0
    assert store.count("working") == 10_000 + len(stored)
    for memory_id in stored[:: max(1, len(stored) // 20)] + stored[-1:]:
        store.get("working", memory_id)


def _written_long_ago(store: MemoryStore, count: int) -> None:
    """Half old, half young memories whose ``added`` stamps lie well before any prune's clock margin."""
    with time_machine.travel(utcnow() - timedelta(hours=1), tick=True):
        _half_old(store, count=count)


def test_a_delete_during_the_copy_stays_deleted_and_the_copy_runs_again(store: MemoryStore) -> None:
    _written_long_ago(store, count=600)
    victim = store.search("working", "*", limit=1, order="newest")[0]
    commits: list[str] = []

    def delete_while_copying(done: int, total: int, stage: str) -> None:
        if stage == "committing":
            commits.append(stage)
            if len(commits) == 1:  # the copy is made, the switch is not: delete a copied survivor
                store.delete("working", victim.id)
                store.flush_layer("working")  # as the background flush would: into the old index

    [result] = store.prune(timedelta(days=30), ["working"], progress=delete_while_copying)
    assert len(commits) == 2, "the first copy was abandoned and the layer copied again"
    assert result.deleted == 300
    assert store.count("working") == 300 - 1
    assert store.search("working", f'id:"{victim.id}"') == []


def test_the_last_prune_attempt_holds_the_lock_so_a_flush_must_wait(store: MemoryStore) -> None:
    _written_long_ago(store, count=600)
    victims = store.search("working", "*", limit=3, order="newest")
    outcomes: list[str] = []

    def delete_at_every_attempt(done: int, total: int, stage: str) -> None:
        if stage != "committing":
            return
        store.delete("working", victims[len(outcomes)].id)  # acknowledged from the write-ahead log
        try:
            store.flush_layer("working")  # into the index: needs the switch lock
        except Busy:
            outcomes.append("busy")
        else:
            outcomes.append("flushed")

    [result] = store.prune(timedelta(days=30), ["working"], progress=delete_at_every_attempt)
    # Two copies are abandoned; the third runs under the switch lock, so its flush times out.
    assert outcomes == ["flushed", "flushed", "busy"]
    assert result.deleted == 300
    store.flush_layer("working")  # the third delete was kept in the log and lands now
    assert store.count("working") == 300 - 3
    assert all(store.search("working", f'id:"{m.id}"') == [] for m in victims)


@pytest.mark.real_clock  # file mtimes keep the real clock
def test_a_generation_switched_by_another_prune_makes_the_first_copy_again(store: MemoryStore) -> None:
    _half_old(store, count=600)
    commits: list[str] = []

    def prune_again_while_copying(done: int, total: int, stage: str) -> None:
        if stage == "committing":
            commits.append(stage)
            if len(commits) == 1:
                store.prune(timedelta(days=30), ["working"])  # switches the layer under the first

    [result] = store.prune(timedelta(days=30), ["working"], progress=prune_again_while_copying)
    assert len(commits) == 2
    assert result.deleted == 0  # the inner prune removed them; the outer's second copy finds none old
    assert store.count("working") == 300
    assert [p.name for p in (store.root / "working").iterdir()] == [store.layer_path("working").name]


@pytest.mark.parametrize("older_than", [timedelta(0), timedelta(days=-1), "30d"])
def test_prune_refuses_a_bad_duration(store: MemoryStore, older_than: object) -> None:
    with pytest.raises(InvalidInput, match="older_than"):
        store.prune(older_than)  # type: ignore[arg-type]


def test_prune_refuses_an_unknown_layer_and_changes_nothing(store: MemoryStore) -> None:
    _half_old(store, count=10)
    with pytest.raises(InvalidInput, match="layer 'nope'"):
        store.prune(timedelta(days=30), ["working", "nope"])
    assert store.count("working") == 10


@pytest.mark.real_clock  # file mtimes keep the real clock
def test_prune_sweeps_stale_leftover_generations_but_not_young_ones(store: MemoryStore) -> None:
    import os
    import time

    _half_old(store, count=10)
    stale = store.root / "working" / "g20200101T000000-deadbeef"
    young = store.root / "working" / "g20990101T000000-cafebabe"
    for leftover in (stale, young):
        leftover.mkdir()
        (leftover / "meta.json").write_text("{}")
    old_time = time.time() - 7200
    os.utime(stale, (old_time, old_time))
    store.prune(timedelta(days=30), ["working"])
    assert not stale.exists()
    assert young.exists()


def test_prune_older_than_anything_possible_is_a_no_op(store: MemoryStore) -> None:
    _half_old(store, count=10)
    [result] = store.prune(timedelta(days=999_999), ["working"])
    assert result.deleted == 0
    assert store.count("working") == 10
