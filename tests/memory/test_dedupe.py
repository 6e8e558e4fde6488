"""Duplicates and dedupe on real indexes: exact groups, the oldest kept, disk freed, writes kept."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import make_settings

from jamey_engine.engine import Engine
from jamey_engine.errors import Busy
from jamey_engine.memory import MemoryStore
from jamey_engine.memory.analysis import MemoryAnalysis
from jamey_engine.memory.dedupe import dedupe_layer, normalize_content
from jamey_engine.memory.wal import is_log_file
from jamey_engine.oplog import recent_operations

START = datetime(2026, 2, 1, tzinfo=UTC)


def _fill(
    store: MemoryStore, layer: str = "working", unique: int = 3000, groups: int = 30, copies: int = 10
) -> None:
    """``unique`` distinct memories, and ``groups`` texts written ``copies`` times each with varied
    case and spacing, the copies' timestamps shuffled so the oldest is not the first written."""
    items = [{"content": f"unique memory {i} about node {i % 97}", "timestamp": START + timedelta(minutes=i)}
             for i in range(unique)]  # fmt: skip
    for g in range(groups):
        for c in range(copies):
            text = f"Disk  FULL on node {g}" if c % 2 else f"disk full on   node {g} "
            when = START + timedelta(hours=(c * 7) % copies, minutes=g)
            items.append({"content": text, "timestamp": when})
    store.store_batch(layer, items)


def test_normalization_folds_case_and_whitespace() -> None:
    assert normalize_content("  Disk\tFULL \n on NODE 1 ") == "disk full on node 1"


def test_duplicates_groups_equal_content_with_counts_times_and_bytes(store: MemoryStore) -> None:
    _fill(store, unique=200, groups=3, copies=4)
    frame = MemoryAnalysis(store).duplicates("working")
    assert len(frame) == 3
    assert frame["count"].tolist() == [4, 4, 4]
    first = frame.iloc[0]
    assert first["content"] == "disk full on   node 0 "  # the oldest copy's own text
    assert first["first"] == START and first["last"] == START + timedelta(hours=3)
    # Copies 1 and 3 are spelled one way, copy 2 like the oldest (copy 0).
    assert first["repeat_bytes"] == 2 * len("Disk  FULL on node 0") + len("disk full on   node 0 ")
    assert frame.attrs["documents"] == 212 and frame.attrs["repeats"] == 9
    assert frame.attrs["share"] == pytest.approx(9 / 212)
    exact = MemoryAnalysis(store).duplicates("working", normalize=False)
    assert exact["count"].tolist() == [2] * 6  # each spelling on its own


def test_dedupe_dry_run_changes_nothing(store: MemoryStore) -> None:
    _fill(store, unique=500, groups=5, copies=3)
    path, size = store.layer_path("working"), store.layer_size("working")
    result = dedupe_layer(store, "working", dry_run=True)
    assert (result.groups, result.deleted, result.dry_run) == (5, 10, True)
    assert result.bytes_after < result.bytes_before == size.bytes
    assert store.layer_path("working") == path and store.layer_size("working") == size


def test_dedupe_deletes_repeats_keeps_the_oldest_and_frees_disk(store: MemoryStore) -> None:
    _fill(store, unique=1000, groups=100, copies=20)  # 1900 of 3000 documents are repeats
    analysis = MemoryAnalysis(store)
    oldest = dict(zip(analysis.duplicates("working")["content"].map(normalize_content),
                      analysis.duplicates("working")["keep_id"], strict=True))  # fmt: skip
    before = store.layer_size("working")
    result = dedupe_layer(store, "working", dry_run=False)
    assert (result.groups, result.deleted, result.dry_run) == (100, 1900, False)
    after = store.layer_size("working")
    assert after.documents == 1100
    assert result.bytes_after == after.bytes <= 0.6 * before.bytes, (before, after)
    assert analysis.duplicates("working").empty
    left = analysis.memories_frame("working", query="full")
    assert len(left) == 100
    for row in left.itertuples():
        assert oldest[normalize_content(row.content)] == row.id
        group = int(row.content.split()[-1])
        assert row.timestamp == START + timedelta(minutes=group)  # copy 0 was the oldest of each group
    path = store.layer_path("working")
    again = dedupe_layer(store, "working", dry_run=False)
    assert again.deleted == 0 and store.layer_size("working") == after
    assert store.layer_path("working") == path  # nothing to delete: no rewrite, no leftover generation
    assert [p.name for p in (store.root / "working").iterdir() if not is_log_file(p.name)] == [path.name]


def test_writes_made_during_a_dedupe_are_never_lost(store: MemoryStore) -> None:
    _fill(store, unique=15_000, groups=500, copies=4)
    stop = threading.Event()
    stored: list[str] = []

    def writer() -> None:
        while not stop.is_set():
            stored.append(store.store("working", f"written during dedupe {len(stored)}").id)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = dedupe_layer(store, "working", dry_run=False)
    finally:
        stop.set()
        thread.join()
    assert len(stored) > 0
    assert result.deleted == 1500
    assert store.count("working") == 15_000 + 500 + len(stored)
    for memory_id in stored[:: max(1, len(stored) // 20)] + stored[-1:]:
        store.get("working", memory_id)


def test_engine_dedupe_records_each_layer_in_the_operation_log(engine: Engine) -> None:
    _fill(engine.memory, "episodic", unique=50, groups=2, copies=3)
    run = engine.dedupe(["episodic", "semantic"], source="cli", actor="ops")
    assert [(r.layer, r.deleted) for r in run.results] == [("episodic", 4), ("semantic", 0)]
    assert run.note is None
    rows = recent_operations(engine.db, kind="dedupe")
    assert sorted((r["layer"], r["count"], r["actor"], r["status"]) for r in rows) == [
        ("episodic", 4, "ops", "success"), ("semantic", 0, "ops", "success")
    ]  # fmt: skip


def test_a_dedupe_that_cannot_take_the_lock_is_recorded_as_a_failure_and_changes_nothing(
    data_dir: Path,
) -> None:
    engine = Engine(make_settings(data_dir, JAMEY_LOCK_TIMEOUT="0.3"))
    try:
        _fill(engine.memory, unique=20, groups=2, copies=3)
        path = engine.memory.layer_path("working")
        with engine.memory.generations.shared("a long import"), pytest.raises(Busy):
            engine.dedupe(["working"], source="cli")
        assert engine.memory.layer_path("working") == path and engine.memory.count("working") == 26
        [row] = recent_operations(engine.db, kind="dedupe")
        assert (row["status"], row["actor"]) == ("failure", "cli") and "being switched" in row["detail"]
    finally:
        engine.close()


def test_dedupe_counts_and_removes_unflushed_duplicates_exactly(memory_root: Path) -> None:
    store = MemoryStore(memory_root, flush_interval=3600)  # nothing flushes in the background
    try:
        store.store_batch("working", ["same words", "other words"])
        store.flush()
        kept = store.store("working", "unique, unflushed")
        for _ in range(3):
            store.store("working", "Same  words")  # duplicates, still in the log
        assert dedupe_layer(store, "working", dry_run=True).deleted == 3
        assert dedupe_layer(store, "working", dry_run=False).deleted == 3
        assert store.count("working") == 3 and store.get("working", kept.id)
        assert len(store.search("working", "same")) == 1
    finally:
        store.close()
    assert MemoryStore(memory_root).count("working") == 3
