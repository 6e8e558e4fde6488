"""Snapshots for backups, validation of staged indexes, and atomic restores of all layers."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from jamey_engine.errors import InvalidInput, StorageCorrupt
from jamey_engine.memory import LAYERS, MemoryStore
from jamey_engine.memory.wal import is_log_file


def test_snapshot_copies_every_layer_and_counts_documents(store: MemoryStore, tmp_path: Path) -> None:
    store.store_batch("working", ["a", "b"])
    store.store("semantic", "c")
    counts = store.snapshot(tmp_path / "snap")
    assert counts == {"short_term": 0, "long_term": 0, "working": 2, "episodic": 0, "semantic": 1}
    assert store.validate_layers(tmp_path / "snap") == counts
    for layer in LAYERS:
        assert not (tmp_path / "snap" / layer / ".tantivy-writer.lock").exists()


def test_snapshot_is_unaffected_by_later_writes(store: MemoryStore, tmp_path: Path) -> None:
    store.store("working", "before")
    store.snapshot(tmp_path / "snap")
    store.store_batch("working", [f"after {i}" for i in range(300)])
    assert store.validate_layers(tmp_path / "snap")["working"] == 1


def test_snapshot_while_writers_commit_is_consistent(store: MemoryStore, tmp_path: Path) -> None:
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            store.store("working", "busy writer")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        snapshots = [store.snapshot(tmp_path / f"snap{i}")["working"] for i in range(5)]
    finally:
        stop.set()
        thread.join()
    for i, count in enumerate(snapshots):
        assert store.validate_layers(tmp_path / f"snap{i}")["working"] == count
    assert snapshots == sorted(snapshots)


def test_restore_switches_all_layers_at_once(store: MemoryStore, tmp_path: Path) -> None:
    kept = store.store("working", "in the backup")
    store.store("episodic", "also in the backup")
    store.snapshot(tmp_path / "snap")
    store.store("working", "after the backup")
    store.store("semantic", "after the backup too")
    before = json.loads((store.root / "CURRENT").read_text())
    store.restore_layers(tmp_path / "snap")
    after = json.loads((store.root / "CURRENT").read_text())
    assert all(before[layer] != after[layer] for layer in LAYERS)
    assert store.count("working") == 1 and store.get("working", kept.id).content == "in the backup"
    assert store.count("episodic") == 1
    assert store.count("semantic") == 0
    assert all(_generations(store, layer) == [after[layer]] for layer in LAYERS)
    store.store("working", "writes go to the restored generation")
    assert store.count("working") == 2


def test_validate_names_a_missing_layer(store: MemoryStore, tmp_path: Path) -> None:
    store.snapshot(tmp_path / "snap")
    import shutil

    shutil.rmtree(tmp_path / "snap" / "long_term")
    with pytest.raises(StorageCorrupt, match="layer 'long_term'") as caught:
        store.validate_layers(tmp_path / "snap")
    assert caught.value.path == str(tmp_path / "snap" / "long_term")


def test_restore_of_a_damaged_staging_dir_changes_nothing(store: MemoryStore, tmp_path: Path) -> None:
    store.store("working", "current")
    store.snapshot(tmp_path / "snap")
    (tmp_path / "snap" / "episodic" / "meta.json").write_text("garbage")
    before = (store.root / "CURRENT").read_text()
    with pytest.raises(StorageCorrupt, match="layer 'episodic'"):
        store.restore_layers(tmp_path / "snap")
    assert (store.root / "CURRENT").read_text() == before
    assert all(len(_generations(store, layer)) == 1 for layer in LAYERS)
    with pytest.raises(InvalidInput, match="not a directory"):
        store.restore_layers(tmp_path / "nothing-here")


def _generations(store: MemoryStore, layer: str) -> list[str]:
    """The generation directories of ``layer`` (its write-ahead log files live beside them)."""
    return [p.name for p in (store.root / layer).iterdir() if not is_log_file(p.name)]
