"""Sizes (bytes, documents, segments per layer) and growth (documents per day per layer)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jamey_engine.durations import utcnow
from jamey_engine.errors import InvalidInput
from jamey_engine.memory import LAYERS, MemoryStore


def test_sizes_report_every_layer_and_the_totals(store: MemoryStore) -> None:
    store.store_batch("working", ["one", "two", "three"])
    store.store("semantic", "four")
    sizes = store.sizes()
    assert set(sizes.layers) == set(LAYERS)
    assert sizes.layers["working"].documents == 3
    assert sizes.layers["semantic"].documents == 1
    assert sizes.layers["working"].segments >= 1
    assert sizes.layers["working"].bytes > sizes.layers["episodic"].bytes > 0
    assert sizes.total_documents == 4
    assert sizes.total_bytes == sum(s.bytes for s in sizes.layers.values())
    assert store.layer_size("working") == sizes.layers["working"]


def test_sizes_on_a_fresh_data_dir_create_empty_layers(store: MemoryStore) -> None:
    assert store.sizes().total_documents == 0
    assert (store.root / "CURRENT").is_file()


def test_growth_counts_documents_per_day_and_layer_with_zero_days(store: MemoryStore) -> None:
    now = utcnow()
    store.store_batch(
        "working",
        [
            ("today", now.isoformat()),
            ("today again", now.isoformat()),
            ("two days ago", (now - timedelta(days=2)).isoformat()),
            ("long ago", (now - timedelta(days=40)).isoformat()),
        ],
    )
    store.store("episodic", "yesterday", timestamp=now - timedelta(days=1))
    rows = store.growth(days=3)
    assert len(rows) == 3 * len(LAYERS)
    table = {(row["day"], row["layer"]): row["documents"] for row in rows}
    today = now.date()
    assert table[(today, "working")] == 2
    assert table[(today - timedelta(days=1), "working")] == 0
    assert table[(today - timedelta(days=2), "working")] == 1
    assert table[(today - timedelta(days=1), "episodic")] == 1
    assert sum(table.values()) == 4
    assert rows[0]["day"] == today - timedelta(days=2)


@pytest.mark.parametrize("days", [0, -3, 5000, True, "7"])
def test_growth_refuses_a_bad_window(store: MemoryStore, days: object) -> None:
    with pytest.raises(InvalidInput, match="days"):
        store.growth(days)  # type: ignore[arg-type]
