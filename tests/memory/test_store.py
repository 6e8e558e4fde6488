"""Storing, getting, deleting and batches, with every bad input refused and nothing changed."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jamey_engine.errors import InvalidInput, NotFound, PayloadTooLarge
from jamey_engine.memory import LAYERS, MemoryStore
from jamey_engine.memory.store import SMALL_BATCH


def test_store_returns_a_committed_memory_visible_to_get(store: MemoryStore) -> None:
    memory = store.store("working", "the disk on node-3 is filling up")
    assert memory.layer == "working"
    assert memory.timestamp.tzinfo is not None
    assert store.get("working", memory.id) == memory


def test_a_store_given_up_before_its_commit_is_skipped_and_the_writer_goes_on(store: MemoryStore) -> None:
    # An event loop cancels the future it awaits when its request is cancelled. Holding the
    # writer's lock keeps the queued store from being taken until the cancel has happened.
    writer = store.writer("working")
    store.store("working", "the writer thread is up")
    with writer._cond:
        abandoned, committed = store.store_nowait("working", "nobody waits for this one")
        assert committed.cancel()
    kept, done = store.store_nowait("working", "stored after the cancelled one")
    done.result(timeout=30)  # a writer thread killed by the cancelled future would never answer
    assert store.get("working", kept.id) == kept
    with pytest.raises(NotFound):
        store.get("working", abandoned.id)


def test_store_keeps_a_given_timestamp_to_the_microsecond(store: MemoryStore) -> None:
    memory = store.store("episodic", "deploy 42 went out", timestamp="2025-03-04T05:06:07.123456Z")
    assert store.get("episodic", memory.id).timestamp == datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def test_each_layer_is_its_own_index(store: MemoryStore) -> None:
    memory = store.store("semantic", "only in semantic")
    for layer in LAYERS:
        assert store.count(layer) == (1 if layer == "semantic" else 0)
    with pytest.raises(NotFound):
        store.get("working", memory.id)


def test_store_batch_stores_all_items_in_order(store: MemoryStore) -> None:
    ids = store.store_batch("long_term", [{"content": "first"}, ("second", "2025-01-01T00:00:00Z"), "third"])
    assert [store.get("long_term", i).content for i in ids] == ["first", "second", "third"]


def test_a_large_batch_takes_the_bulk_path_and_a_small_one_does_not(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = store.writer("working")
    bulk_jobs: list[Any] = []
    real_bulk = writer.bulk

    def recording_bulk(job: Any) -> Any:
        bulk_jobs.append(job)
        return real_bulk(job)

    monkeypatch.setattr(writer, "bulk", recording_bulk)  # records, then runs the real bulk writer
    store.store_batch("working", [f"small {i}" for i in range(SMALL_BATCH)])
    assert bulk_jobs == []
    ids = store.store_batch("working", [f"memory {i}" for i in range(1500)])
    assert len(bulk_jobs) == 1
    assert len(set(ids)) == 1500
    assert store.count("working") == SMALL_BATCH + 1500


def test_a_bad_batch_item_stores_nothing(store: MemoryStore) -> None:
    with pytest.raises(InvalidInput, match=r"items\[1\]\.timestamp"):
        store.store_batch("working", [{"content": "fine"}, {"content": "bad", "timestamp": "yesterday"}])
    with pytest.raises(InvalidInput, match=r"items\[0\] has no content"):
        store.store_batch("working", [{"timestamp": "2025-01-01T00:00:00Z"}])
    assert store.count("working") == 0


def test_delete_removes_the_memory(store: MemoryStore) -> None:
    memory = store.store("working", "temporary")
    store.delete("working", memory.id)
    with pytest.raises(NotFound, match=memory.id):
        store.get("working", memory.id)
    with pytest.raises(NotFound):
        store.delete("working", memory.id)


def test_get_of_an_id_that_is_not_a_uuid_is_invalid_input(store: MemoryStore) -> None:
    with pytest.raises(InvalidInput, match="not a UUID"):
        store.get("working", "not-an-id")


@pytest.mark.parametrize("layer", ["", "Working", "short-term", "nope"])
def test_an_unknown_layer_is_refused_with_the_valid_ones_listed(store: MemoryStore, layer: str) -> None:
    with pytest.raises(InvalidInput, match="short_term, long_term, working, episodic, semantic"):
        store.store(layer, "text")


@pytest.mark.parametrize("content", ["", "   \n\t"])
def test_empty_content_is_refused(store: MemoryStore, content: str) -> None:
    with pytest.raises(InvalidInput, match="content must not be empty"):
        store.store("working", content)
    assert store.count("working") == 0


def test_oversized_content_is_refused_naming_the_bound(store: MemoryStore) -> None:
    with pytest.raises(PayloadTooLarge, match="1001 bytes; the limit is 1000"):
        store.store("working", "x" * 1001)
    store.store("working", "é" * 500)  # 1000 bytes exactly is fine
    with pytest.raises(PayloadTooLarge):
        store.store("working", "é" * 501)
    assert store.count("working") == 1


@pytest.mark.parametrize("timestamp", ["yesterday", "2025-13-01T00:00:00Z", "12:00"])
def test_a_bad_timestamp_is_refused_naming_the_value(store: MemoryStore, timestamp: str) -> None:
    with pytest.raises(InvalidInput, match=f"timestamp {timestamp!r}"):
        store.store("working", "text", timestamp=timestamp)
    assert store.count("working") == 0


def test_concurrent_stores_share_commits_and_none_is_lost(store: MemoryStore) -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(10):
            memory = store.store("working", f"thread {n} memory {i}")
            with lock:
                ids.append(memory.id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 160
    assert store.count("working") == 160
    assert store.writer("working").commits < 160


def test_a_closed_store_refuses_writes(memory_root) -> None:  # type: ignore[no-untyped-def]
    store = MemoryStore(memory_root)
    store.store("working", "before close")
    store.close()
    with pytest.raises(InvalidInput, match="closed"):
        store.store("working", "after close")
    reopened = MemoryStore(memory_root)
    assert reopened.count("working") == 1
    reopened.close()


def test_timestamps_beyond_what_the_index_can_hold_are_refused_on_every_path(
    store: MemoryStore, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="2261"):
        store.store("working", "far future", timestamp="3000-01-01T00:00:00Z")
    with pytest.raises(InvalidInput, match=r"items\[0\]\.timestamp"):
        store.store_batch("working", [{"content": "far", "timestamp": "2300-01-01T00:00:00Z"}])
    source = tmp_path / "future.jsonl"
    source.write_text('{"content": "far", "timestamp": "2262-06-01T00:00:00Z"}\n')
    with pytest.raises(InvalidInput, match="line 1: timestamp"):
        store.import_jsonl("working", source)
    assert store.count("working") == 0


def test_text_with_a_lone_surrogate_is_refused_on_every_path(store: MemoryStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="lone surrogate"):
        store.store("working", "broken \ud800 text")
    with pytest.raises(InvalidInput, match=r"items\[1\]\.content is not valid Unicode"):
        store.store_batch("working", ["fine", "broken \udfff"])
    source = tmp_path / "surrogate.jsonl"
    source.write_text('{"content": "ok"}\n{"content": "bad \\ud800"}\n')
    with pytest.raises(InvalidInput, match="line 2: content is not valid Unicode"):
        store.import_jsonl("working", source)
    assert store.count("working") == 0
