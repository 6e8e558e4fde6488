"""The CURRENT pointer, generation switches seen by other store instances, damaged storage."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from jamey_engine.errors import StorageCorrupt
from jamey_engine.memory import LAYERS, MemoryStore


def test_the_pointer_names_one_generation_per_layer(store: MemoryStore) -> None:
    store.sizes()
    pointer = json.loads((store.root / "CURRENT").read_text())
    assert set(pointer) == set(LAYERS)
    for layer, generation in pointer.items():
        assert (store.root / layer / generation / "meta.json").is_file()
    assert not list(store.root.glob(".CURRENT*.tmp"))


def test_another_instance_follows_a_switch_on_its_next_operation(
    store: MemoryStore, memory_root: Path
) -> None:
    other = MemoryStore(memory_root, lock_timeout=2.0)
    try:
        store.store_batch("working", [("old", "2020-01-01T00:00:00Z"), "new"])
        assert other.count("working") == 2
        other.store("working", "written by the other before the switch")
        store.prune(timedelta(days=30), ["working"])
        assert other.count("working") == 2
        written = other.store("working", "written by the other after the switch")
        other.flush()  # another process sees a write once it is flushed
        assert store.get("working", written.id).content == "written by the other after the switch"
        assert store.count("working") == 3
    finally:
        other.close()


def test_a_missing_generation_directory_is_storage_corrupt_naming_layer_and_path(
    store: MemoryStore, memory_root: Path
) -> None:
    store.store("working", "x")
    path = store.layer_path("working")
    store.close()
    shutil.rmtree(path)
    fresh = MemoryStore(memory_root)
    try:
        with pytest.raises(StorageCorrupt, match="layer 'working'") as caught:
            fresh.search("working", "x")
        assert caught.value.path == str(path)
        assert str(path) in caught.value.message
        with pytest.raises(StorageCorrupt, match="layer 'working'"):
            fresh.store("working", "y")
        with pytest.raises(StorageCorrupt, match="layer 'working'"):
            fresh.sizes()
        assert fresh.count("episodic") == 0  # the other layers still work
    finally:
        fresh.close()


def test_a_corrupted_meta_file_is_storage_corrupt(store: MemoryStore, memory_root: Path) -> None:
    store.store("episodic", "x")
    path = store.layer_path("episodic")
    store.close()
    (path / "meta.json").write_text("{ this is not json")
    fresh = MemoryStore(memory_root)
    try:
        with pytest.raises(StorageCorrupt, match=r"layer 'episodic'.*meta\.json"):
            fresh.search("episodic", "x")
    finally:
        fresh.close()


def test_a_damaged_segment_is_storage_corrupt(store: MemoryStore, memory_root: Path) -> None:
    store.store("semantic", "x")
    path = store.layer_path("semantic")
    store.close()
    for segment_file in path.glob("*.store"):
        segment_file.write_bytes(b"garbage")
    fresh = MemoryStore(memory_root)
    try:
        with pytest.raises(StorageCorrupt, match="layer 'semantic'"):
            fresh.search("semantic", "x")
    finally:
        fresh.close()


def test_a_corrupted_pointer_is_storage_corrupt_naming_it(store: MemoryStore, memory_root: Path) -> None:
    store.sizes()
    store.close()
    (memory_root / "CURRENT").write_text("[1, 2")
    fresh = MemoryStore(memory_root)
    try:
        with pytest.raises(StorageCorrupt, match="CURRENT") as caught:
            fresh.sizes()
        assert caught.value.path == str(memory_root / "CURRENT")
    finally:
        fresh.close()


def test_a_layer_never_created_is_created_empty(store: MemoryStore, memory_root: Path) -> None:
    store.store("working", "keep me")
    pointer = json.loads((memory_root / "CURRENT").read_text())
    store.close()
    shutil.rmtree(memory_root / "semantic")
    del pointer["semantic"]
    (memory_root / "CURRENT").write_text(json.dumps(pointer))
    fresh = MemoryStore(memory_root)
    try:
        assert fresh.count("semantic") == 0
        assert fresh.count("working") == 1
    finally:
        fresh.close()


def test_layer_data_the_pointer_does_not_name_is_refused_not_hidden(
    store: MemoryStore, memory_root: Path
) -> None:
    store.store("working", "precious")
    store.close()
    (memory_root / "CURRENT").unlink()
    fresh = MemoryStore(memory_root)
    try:
        with pytest.raises(StorageCorrupt, match=r"layer 'working'.*holds index data"):
            fresh.count("working")
    finally:
        fresh.close()
