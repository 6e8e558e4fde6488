"""Search: tantivy query syntax, score or newest order, time ranges, bounded limits."""

from __future__ import annotations

import pytest

from jamey_engine.errors import InvalidInput
from jamey_engine.memory import MemoryStore


@pytest.fixture
def filled(store: MemoryStore) -> MemoryStore:
    store.store_batch(
        "working",
        [
            ("disk latency on node one", "2025-01-01T00:00:00Z"),
            ("disk full on node two", "2025-01-02T00:00:00Z"),
            ("network latency latency latency", "2025-01-03T00:00:00Z"),
            ("backup finished", "2025-01-04T00:00:00Z"),
        ],
    )
    return store


def test_search_by_score_puts_the_best_match_first_with_scores(filled: MemoryStore) -> None:
    found = filled.search("working", "latency")
    assert found[0].content == "network latency latency latency"
    assert len(found) == 2
    assert all(m.score is not None and m.score > 0 for m in found)


def test_search_newest_first_orders_by_timestamp(filled: MemoryStore) -> None:
    found = filled.search("working", "disk OR latency", order="newest")
    assert [m.content for m in found] == [
        "network latency latency latency",
        "disk full on node two",
        "disk latency on node one",
    ]
    assert all(m.score is None for m in found)


def test_search_accepts_tantivy_syntax(filled: MemoryStore) -> None:
    assert [m.content for m in filled.search("working", "disk AND latency")] == ["disk latency on node one"]
    assert [m.content for m in filled.search("working", '"full on node"')] == ["disk full on node two"]
    assert len(filled.search("working", "*")) == 4
    assert len(filled.search("working", "timestamp:[2025-01-03T00:00:00Z TO *]")) == 2


def test_search_with_a_time_range_includes_since_and_excludes_until(filled: MemoryStore) -> None:
    found = filled.search(
        "working", "*", since="2025-01-02T00:00:00Z", until="2025-01-04T00:00:00Z", order="newest"
    )
    assert [m.content for m in found] == ["network latency latency latency", "disk full on node two"]


def test_search_limit_bounds_the_results(filled: MemoryStore) -> None:
    assert len(filled.search("working", "*", limit=1)) == 1


def test_search_sees_a_store_at_once(store: MemoryStore) -> None:
    store.search("working", "*")
    store.store("working", "fresh thought")
    assert [m.content for m in store.search("working", "fresh")] == ["fresh thought"]


@pytest.mark.parametrize("query", ["content:(", '"unclosed', "AND", "nosuchfield:x", "[1 TO"])
def test_a_malformed_query_is_a_clear_error(filled: MemoryStore, query: str) -> None:
    with pytest.raises(InvalidInput, match="malformed"):
        filled.search("working", query)


@pytest.mark.parametrize("query", ["", "   "])
def test_an_empty_query_is_refused(filled: MemoryStore, query: str) -> None:
    with pytest.raises(InvalidInput, match="query must not be empty"):
        filled.search("working", query)


@pytest.mark.parametrize("limit", [0, -1, 1001, True, "10"])
def test_a_limit_out_of_range_is_refused(filled: MemoryStore, limit: object) -> None:
    with pytest.raises(InvalidInput, match="limit"):
        filled.search("working", "disk", limit=limit)  # type: ignore[arg-type]


def test_bad_order_and_times_are_refused(filled: MemoryStore) -> None:
    with pytest.raises(InvalidInput, match="order 'oldest'"):
        filled.search("working", "disk", order="oldest")
    with pytest.raises(InvalidInput, match="since 'soon'"):
        filled.search("working", "disk", since="soon")
    with pytest.raises(InvalidInput, match="layer 'nope'"):
        filled.search("nope", "disk")


def test_an_empty_time_window_finds_nothing(filled: MemoryStore) -> None:
    assert filled.search("working", "disk", since="2025-02-01T00:00:00Z", until="2025-01-01T00:00:00Z") == []
    assert filled.search("working", "disk", since="2025-01-01T00:00:00Z", until="2025-01-01T00:00:00Z") == []
