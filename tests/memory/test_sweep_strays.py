"""Sweeping leftover generations: only what CURRENT does not name, and never while a build runs."""

from __future__ import annotations

from jamey_engine.memory import MemoryStore
from jamey_engine.memory.schema import create_index


def test_a_leftover_generation_and_pointer_temp_file_are_swept(store: MemoryStore) -> None:
    store.store("working", "kept")
    current = store.layer_path("working")
    _, stray = store.generations.new_generation("working")
    create_index(stray)
    temp = store.root / ".CURRENT.123.abcd.tmp"
    temp.write_text("{}")
    beside = {p.name for p in current.parent.iterdir() if p.is_file()}  # the write-ahead log, locks
    log_like = current.parent / "wal-999999999999.log"
    log_like.write_bytes(b"")
    assert store.generations.sweep_strays("working") == [stray.name]
    assert {p.name for p in current.parent.iterdir() if p.is_dir()} == {current.name}
    assert beside | {log_like.name} <= {p.name for p in current.parent.iterdir()}, "files stay"
    log_like.unlink()
    assert not temp.exists()
    assert [m.content for m in store.search("working", "kept")] == ["kept"]


def test_nothing_is_swept_while_another_build_holds_the_build_lock(store: MemoryStore) -> None:
    store.store("working", "kept")
    with store.generations.building():
        _, building = store.generations.new_generation("working")
        assert store.generations.sweep_strays("working") == []
        assert building.exists()
    assert store.generations.sweep_strays("working") == [building.name]
