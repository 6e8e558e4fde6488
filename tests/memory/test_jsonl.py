"""JSON Lines import and export: round trips, and a bad line imports nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jamey_engine.errors import InvalidInput, PayloadTooLarge
from jamey_engine.memory import MemoryStore


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_then_export_round_trips_content_and_timestamps(store: MemoryStore, tmp_path: Path) -> None:
    source = _write(
        tmp_path / "in.jsonl",
        [
            json.dumps({"content": "second", "timestamp": "2025-01-02T00:00:00+00:00"}),
            "",
            json.dumps({"content": "first", "timestamp": "2025-01-01T00:00:00Z"}),
            json.dumps({"content": "no time given"}),
        ],
    )
    calls: list[tuple[int, int, str]] = []
    assert store.import_jsonl("episodic", source, progress=lambda d, t, s: calls.append((d, t, s))) == 3
    assert calls and calls[-1][0] == calls[-1][1]
    out = tmp_path / "out.jsonl"
    assert store.export_jsonl("episodic", out) == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["content"] for r in rows] == ["first", "second", "no time given"]
    assert rows[0]["timestamp"] == "2025-01-01T00:00:00+00:00"
    assert all(set(r) == {"id", "content", "timestamp"} for r in rows)


def test_a_large_import_is_counted_exactly(store: MemoryStore, tmp_path: Path) -> None:
    source = _write(tmp_path / "big.jsonl", [json.dumps({"content": f"memory {i}"}) for i in range(12_000)])
    assert store.import_jsonl("working", source) == 12_000
    assert store.count("working") == 12_000


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2 is not JSON"),
        ('["content"]', 'line 2 must be an object with "content"'),
        ('{"content": ""}', "line 2: content must not be empty"),
        ('{"content": "x", "timestamp": "later"}', "line 2: timestamp 'later'"),
        ('{"content": 5}', "line 2: content must be text"),
    ],
)
def test_a_bad_line_imports_nothing_and_names_the_line(
    store: MemoryStore, tmp_path: Path, line: str, message: str
) -> None:
    source = _write(tmp_path / "bad.jsonl", [json.dumps({"content": "good"}), line])
    with pytest.raises(InvalidInput, match=message):
        store.import_jsonl("working", source)
    assert store.count("working") == 0
    store.store("working", "the writer still works after a rollback")
    assert store.count("working") == 1


def test_an_oversized_line_is_refused(store: MemoryStore, tmp_path: Path) -> None:
    source = _write(tmp_path / "big.jsonl", [json.dumps({"content": "y" * 2000})])
    with pytest.raises(PayloadTooLarge, match="line 1: content is 2000 bytes"):
        store.import_jsonl("working", source)


def test_a_missing_import_file_is_invalid_input(store: MemoryStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        store.import_jsonl("working", tmp_path / "nope.jsonl")


def test_export_to_an_unwritable_place_is_invalid_input(store: MemoryStore, tmp_path: Path) -> None:
    store.store("working", "x")
    with pytest.raises(InvalidInput, match="cannot be written"):
        store.export_jsonl("working", tmp_path / "no" / "such" / "dir.jsonl")


def test_export_of_an_empty_layer_writes_an_empty_file(store: MemoryStore, tmp_path: Path) -> None:
    assert store.export_jsonl("semantic", tmp_path / "empty.jsonl") == 0
    assert (tmp_path / "empty.jsonl").read_text() == ""
