"""Memories as data: frames, histograms and top terms on real tantivy indexes, checked by hand counts."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from jamey_engine.errors import InvalidInput
from jamey_engine.memory import MemoryStore
from jamey_engine.memory.analysis import MemoryAnalysis

START = datetime(2026, 3, 1, tzinfo=UTC)


def _stamps(count: int, step: timedelta, start: datetime = START) -> list[datetime]:
    return [start + step * i for i in range(count)]


@pytest.fixture
def analysis(store: MemoryStore) -> MemoryAnalysis:
    return MemoryAnalysis(store)


@pytest.fixture
def filled(store: MemoryStore, analysis: MemoryAnalysis) -> list[datetime]:
    """working: 500 memories 37 minutes apart; episodic: 40 memories a day apart."""
    stamps = _stamps(500, timedelta(minutes=37, microseconds=250))
    store.store_batch(
        "working",
        [
            {"content": f"working note {i} on disk {i % 5}", "timestamp": when}
            for i, when in enumerate(stamps)
        ],
    )
    store.store_batch(
        "episodic",
        [
            {"content": f"episode {i} harbour", "timestamp": START + timedelta(days=i, hours=1)}
            for i in range(40)
        ],
    )
    return stamps


def test_memories_frame_returns_every_memory_oldest_first_with_its_columns(
    analysis: MemoryAnalysis, filled: list[datetime]
) -> None:
    frame = analysis.memories_frame("working", chunk=64)  # many pages: the keyset paging is exercised
    assert list(frame.columns) == ["id", "layer", "timestamp", "content", "length"]
    assert len(frame) == 500 and frame["id"].is_unique
    assert list(frame["timestamp"]) == [pd.Timestamp(when) for when in filled]  # to the microsecond
    assert frame.loc[3, "content"] == "working note 3 on disk 3"
    assert frame["length"].tolist() == frame["content"].str.len().tolist()
    assert set(frame["layer"]) == {"working"}
    assert frame.attrs == {"matched": 500, "returned": 500, "left_out": 0}


def test_memories_frame_pages_through_many_memories_in_the_same_second(
    store: MemoryStore, analysis: MemoryAnalysis
) -> None:
    for batch in range(5):  # five commits: five segments, all at the same second
        store.store_batch(
            "semantic", [{"content": f"same second {batch}-{i}", "timestamp": START} for i in range(50)]
        )
        store.flush()  # one commit each (the log would otherwise index all five in one)
    frame = analysis.memories_frame("semantic", chunk=40)
    assert len(frame) == 250 and frame["id"].is_unique
    store.store_batch("short_term", [("later", START + timedelta(microseconds=900)), ("sooner", START)])
    assert analysis.memories_frame("short_term")["content"].tolist() == ["sooner", "later"]  # within a second
    assert store.layer_size("semantic").segments > 1


def test_memories_frame_keeps_to_the_window(analysis: MemoryAnalysis, filled: list[datetime]) -> None:
    since, until = START + timedelta(hours=10), START + timedelta(hours=20)
    frame = analysis.memories_frame("working", since=since, until=until.isoformat())
    # The index compares to the second: a memory counts from the second it falls in.
    expected = [w for w in filled if since <= w.replace(microsecond=0) < until]
    assert list(frame["timestamp"]) == [pd.Timestamp(w) for w in expected]


def test_memories_frame_with_a_query_and_a_limit_reports_what_it_left_out(
    analysis: MemoryAnalysis, filled: list[datetime]
) -> None:
    frame = analysis.memories_frame("working", query="disk AND 3", limit=7, columns=["content", "timestamp"])
    assert list(frame.columns) == ["content", "timestamp"]
    assert frame["content"].tolist() == [f"working note {i} on disk 3" for i in range(3, 38, 5)]
    assert frame.attrs == {"matched": 100, "returned": 7, "left_out": 93}


def test_memories_frame_of_all_layers_merges_them_in_time_order(
    analysis: MemoryAnalysis, filled: list[datetime]
) -> None:
    frame = analysis.memories_frame("all")
    assert len(frame) == 540
    assert frame["timestamp"].is_monotonic_increasing
    assert frame["layer"].value_counts().to_dict() == {
        "working": 500, "episodic": 40, "short_term": 0, "long_term": 0, "semantic": 0
    }  # fmt: skip
    limited = analysis.memories_frame("all", limit=3)
    assert limited.attrs["left_out"] == 537
    assert limited["layer"].tolist() == ["working", "working", "episodic"]  # 00:00, 00:37, then 01:00


def test_memories_frame_of_an_empty_window_has_the_columns_and_no_rows(
    analysis: MemoryAnalysis, filled: list[datetime]
) -> None:
    frame = analysis.memories_frame("working", since="2030-01-01T00:00:00Z")
    assert list(frame.columns) == ["id", "layer", "timestamp", "content", "length"]
    assert frame.empty and frame.attrs["matched"] == 0


def test_histogram_by_day_and_by_hour_matches_a_count_by_hand(
    analysis: MemoryAnalysis, filled: list[datetime]
) -> None:
    by_day = analysis.histogram("working", "1d")
    expected = Counter(w.replace(hour=0, minute=0, second=0, microsecond=0) for w in filled)
    assert dict(zip(by_day["start"], by_day["documents"], strict=True)) == {
        pd.Timestamp(day): count for day, count in expected.items()
    }
    since, until = START + timedelta(hours=3), START + timedelta(hours=9)
    by_hour = analysis.histogram("working", "1h", since=since, until=until)
    hours = Counter(w.replace(minute=0, second=0, microsecond=0) for w in filled if since <= w < until)
    assert len(by_hour) == 6 and by_hour["documents"].sum() == sum(hours.values())
    assert dict(zip(by_hour["start"], by_hour["documents"], strict=True)) == {
        pd.Timestamp(since + timedelta(hours=h)): hours.get(since + timedelta(hours=h), 0) for h in range(6)
    }


def test_histogram_fills_empty_days_of_the_window_with_zeros(
    analysis: MemoryAnalysis, filled: list[datetime]
) -> None:
    frame = analysis.histogram("all", "1d", since="2026-02-25", until=date(2026, 3, 3))
    semantic = frame[frame["layer"] == "semantic"]
    assert len(semantic) == 6 and semantic["documents"].sum() == 0
    episodic = frame[frame["layer"] == "episodic"].set_index("start")["documents"]
    assert episodic.to_dict() == {
        pd.Timestamp(f"2026-0{d}", tz=UTC): n
        for d, n in (("2-25", 0), ("2-26", 0), ("2-27", 0), ("2-28", 0), ("3-01", 1), ("3-02", 1))
    }


def test_top_terms_counts_documents_per_term_without_stop_words(
    store: MemoryStore, analysis: MemoryAnalysis
) -> None:
    # A corpus with known frequencies: "latency" in 30 memories, "disk" in 20, "harbour" in 10.
    items = [{"content": "The latency of the disk is high", "timestamp": START} for _ in range(20)]
    items += [{"content": "and the latency was LATENCY again", "timestamp": START} for _ in range(10)]
    items += [
        {"content": "a harbour, by the sea 42", "timestamp": START + timedelta(days=8)} for _ in range(10)
    ]
    store.store_batch("long_term", items)
    terms = analysis.top_terms("long_term", n=4)
    # Ties are broken alphabetically; "the", "of", "is", "a", "by" and "42" are left out.
    assert terms[["term", "documents"]].values.tolist() == [
        ["latency", 30], ["disk", 20], ["high", 20], ["harbour", 10]
    ]  # fmt: skip
    assert terms.attrs == {"documents": 40, "method": "term statistics", "sampled": False}
    assert terms["share"].iloc[0] == pytest.approx(0.75)
    week = analysis.top_terms("long_term", since=START + timedelta(days=7), until=START + timedelta(days=14))
    assert week[["term", "documents"]].values.tolist() == [["harbour", 10], ["sea", 10]]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a: a.memories_frame("workng"), "layer 'workng' is not one of: all, short_term"),
        (lambda a: a.memories_frame("working", since="yesterday"), "since 'yesterday' is not a time"),
        (lambda a: a.memories_frame("working", query="content:("), "query 'content:(' is malformed"),
        (lambda a: a.memories_frame("working", limit=0), "limit 0 must be a whole number"),
        (lambda a: a.memories_frame("working", columns=["id", "size"]), "column 'size' is not one of"),
        (lambda a: a.histogram("working", "2d"), "interval '2d' must be one of: 1d, 1h"),
        (lambda a: a.histogram("working", "1d", since="2026-03-02", until="2026-03-01"), "must be before"),
        (lambda a: a.top_terms("working", n=0), "n 0 must be a whole number from 1 to 1000"),
        (lambda a: a.duplicates("nope"), "layer 'nope' is not one of"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(analysis: MemoryAnalysis, call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as caught:
        call(analysis)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_duration_means_that_long_before_now(store: MemoryStore, analysis: MemoryAnalysis) -> None:
    now = datetime.now(UTC)
    store.store_batch("working", [("recent", now - timedelta(hours=1)), ("old", now - timedelta(days=9))])
    assert analysis.memories_frame("working", since="2d")["content"].tolist() == ["recent"]


def test_top_terms_across_layers_is_exact_when_no_single_layer_ranks_the_winner(
    store: MemoryStore, analysis: MemoryAnalysis
) -> None:
    # "steady" is in 30 memories of each of four layers (120); "spike" is in 100 of one layer.
    # Each layer also has 250 filler terms of its own in 32 memories each, above "steady", so
    # "steady" is below every layer's first cut; only exact totals put it first.
    for layer in ("short_term", "long_term", "working", "episodic"):
        fillers = [" ".join(f"{layer[:2]}f{(k % 5) * 50 + j}" for j in range(50)) for k in range(160)]
        store.store_batch(layer, ["steady"] * 30 + fillers)
    store.store_batch("semantic", ["spike"] * 100)
    terms = analysis.top_terms("all", n=2)
    assert terms[["term", "documents"]].values.tolist()[0] == ["steady", 120]
    assert analysis.top_terms("all", n=300).set_index("term").loc["spike", "documents"] == 100
