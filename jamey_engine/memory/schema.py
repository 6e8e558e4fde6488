"""The tantivy schema of a layer index, and conversions between documents and memories.

Fields:
- ``id``: the memory's UUID, untokenized (raw) so it can be deleted by term;
- ``content``: the text, tokenized by tantivy's default tokenizer, stored;
- ``timestamp``: the memory's time (stored to the microsecond; indexed and fast to the second);
- ``added``: when this process wrote the document (ns since the epoch), fast only. A compaction
  uses it to find documents committed while it was copying; rewritten documents drop it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import tantivy

from jamey_engine.errors import StorageCorrupt
from jamey_engine.memory.model import Memory

ID = "id"
CONTENT = "content"
TIMESTAMP = "timestamp"
ADDED = "added"
FIELDS = (ID, CONTENT, TIMESTAMP, ADDED)

# Files tantivy keeps for coordination rather than data: never copied into snapshots.
LOCK_FILES = (".tantivy-writer.lock", ".tantivy-meta.lock")


def build_schema() -> tantivy.Schema:
    """The schema every layer index uses."""
    builder = tantivy.SchemaBuilder()
    builder.add_text_field(ID, stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field(CONTENT, stored=True)
    builder.add_date_field(TIMESTAMP, stored=True, indexed=True, fast=True)
    builder.add_integer_field(ADDED, indexed=True, fast=True)
    return builder.build()


SCHEMA = build_schema()


def make_document(memory_id: str, content: str, timestamp: datetime, added: int) -> tantivy.Document:
    """A tantivy document for one memory (``added`` is a ns epoch stamp of the write)."""
    doc = tantivy.Document()
    doc.add_text(ID, memory_id)
    doc.add_text(CONTENT, content)
    doc.add_date(TIMESTAMP, timestamp)
    doc.add_integer(ADDED, added)
    return doc


def to_memory(doc: tantivy.Document, layer: str, score: float | None = None) -> Memory:
    """Turn a stored tantivy document back into a Memory."""
    timestamp = doc.get_first(TIMESTAMP)
    if not isinstance(timestamp, datetime):
        raise StorageCorrupt(f"layer {layer!r}: a stored document has no timestamp")
    return Memory(
        id=str(doc.get_first(ID)),
        layer=layer,
        content=str(doc.get_first(CONTENT)),
        timestamp=timestamp,
        score=score,
    )


def create_index(path: Path) -> tantivy.Index:
    """Create an empty layer index in the (new or empty) directory ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    return tantivy.Index(SCHEMA, path=str(path), reuse=False)


def open_index(path: Path, layer: str) -> tantivy.Index:
    """Open the layer index at ``path``; StorageCorrupt naming the layer and path if it is unusable."""
    if not path.is_dir():
        raise StorageCorrupt(f"layer {layer!r}: index directory {path} is missing", str(path))
    meta = path / "meta.json"
    try:
        names = [field["name"] for field in json.loads(meta.read_text())["schema"]]
    except FileNotFoundError:
        raise StorageCorrupt(f"layer {layer!r}: {meta} is missing; the index is damaged", str(path)) from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StorageCorrupt(f"layer {layer!r}: {meta} is unreadable ({err})", str(path)) from None
    if [name for name in FIELDS if name not in names]:
        raise StorageCorrupt(
            f"layer {layer!r}: index at {path} has fields {names}, not the memory schema {list(FIELDS)}",
            str(path),
        )
    try:
        index = tantivy.Index.open(str(path))
        index.reload()
        index.searcher()
    except BaseException as err:
        if not is_tantivy_failure(err):
            raise
        raise StorageCorrupt(
            f"layer {layer!r}: index at {path} cannot be opened ({err})", str(path)
        ) from None
    return index


def is_tantivy_failure(err: BaseException) -> bool:
    """True for the errors tantivy raises on damaged files, including a Rust panic.

    A panic surfaces as ``pyo3_runtime.PanicException``, a BaseException subclass that cannot
    be imported by name, so it is recognised by its type's name.
    """
    return isinstance(err, OSError | ValueError) or type(err).__name__ == "PanicException"


def read_meta(path: Path) -> dict[str, Any]:
    """The parsed meta.json of an index directory (OSError/ValueError if unreadable)."""
    result: dict[str, Any] = json.loads((path / "meta.json").read_text())
    return result


def live_documents(meta: dict[str, Any]) -> int:
    """Documents visible in an index, counted from its meta.json (no index opened)."""
    total = 0
    for segment in meta.get("segments", []):
        deletes = segment.get("deletes") or {}
        total += int(segment["max_doc"]) - int(deletes.get("num_deleted_docs", 0))
    return total


def segment_file_prefixes(meta: dict[str, Any]) -> set[str]:
    """File-name prefixes (segment ids without dashes) of the segments meta.json names."""
    return {str(segment["segment_id"]).replace("-", "") for segment in meta.get("segments", [])}


def window_query(since: datetime | None, until: datetime | None) -> tantivy.Query:
    """Documents with since <= timestamp < until (either end may be open)."""
    if since is None and until is None:
        return tantivy.Query.all_query()
    return tantivy.Query.range_query(
        SCHEMA,
        TIMESTAMP,
        tantivy.FieldType.Date,
        since,
        until,
        include_lower=True,
        include_upper=until is None,
    )
