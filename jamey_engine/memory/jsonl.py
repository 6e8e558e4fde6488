"""JSON Lines import and export of one layer: {"content": ..., "timestamp": ...} per line."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tantivy

from jamey_engine.errors import InvalidInput
from jamey_engine.memory.model import (
    check_content,
    check_timestamp,
    new_ids,
    quick_content_ok,
    quick_timestamp,
)
from jamey_engine.memory.schema import TIMESTAMP, to_memory
from jamey_engine.memory.writer import BulkSink
from jamey_engine.progress import Progress, no_progress

if TYPE_CHECKING:
    from jamey_engine.memory.store import MemoryStore

PROGRESS_EVERY = 10_000
CHUNK_BYTES = 4 << 20


def _parse(numbered: list[tuple[int, bytes]], name: str) -> list[Any]:
    """Parse many JSON lines in one call; line by line only to name the line of an error."""
    if not numbered:
        return []
    try:
        items = json.loads(b"[" + b",".join(raw for _, raw in numbered) + b"]")
        if isinstance(items, list) and len(items) == len(numbered):
            return items
    except ValueError:
        pass
    items = []
    for number, raw in numbered:
        try:
            items.append(json.loads(raw))
        except ValueError as err:
            raise InvalidInput(f"{name}, line {number} is not JSON ({err})") from None
    return items


def _checked(item: Any, max_bytes: int, where: str) -> tuple[str, datetime]:
    """Content and timestamp of one line, checked (fast path first, full checks for errors)."""
    if type(item) is not dict or "content" not in item:
        raise InvalidInput(f'{where} must be an object with "content" (and "timestamp")')
    content = item["content"]
    if not quick_content_ok(content, max_bytes):
        content = check_content(content, max_bytes, field=f"{where}: content")
    stamp = item.get("timestamp")
    when = quick_timestamp(stamp) or check_timestamp(stamp, field=f"{where}: timestamp")
    return content, when


def import_jsonl(store: MemoryStore, layer: str, path: Path, progress: Progress | None) -> int:
    """Stream ``path`` into ``layer`` with one bulk writer and one commit; all or nothing.

    Raises InvalidInput naming the file and line of the first bad line; the writer is rolled
    back then, so nothing is stored.
    """
    report = progress or no_progress
    try:
        total = path.stat().st_size
        handle = open(path, "rb")  # noqa: SIM115 (closed by the job below)
    except FileNotFoundError:
        raise InvalidInput(f"import file {str(path)!r} does not exist") from None
    except OSError as err:
        raise InvalidInput(f"import file {str(path)!r} cannot be read ({err.strerror})") from None

    max_bytes = store.max_content_bytes

    def job(sink: BulkSink) -> int:
        done = number = 0
        with handle:
            while lines := handle.readlines(CHUNK_BYTES):
                numbered = []
                for raw in lines:
                    number += 1
                    done += len(raw)
                    if raw.strip():
                        numbered.append((number, raw))
                items = _parse(numbered, path.name)
                for (line_number, _), item, memory_id in zip(
                    numbered, items, new_ids(len(items)), strict=True
                ):
                    content, when = _checked(item, max_bytes, f"{path.name}, line {line_number}")
                    sink.add(memory_id, content, when)
                report(done, total, "importing")
        report(total, total, "committing")
        return sink.done

    count: int = store.writer(layer).bulk(job).result()
    return count


def export_jsonl(store: MemoryStore, layer: str, path: Path, progress: Progress | None) -> int:
    """Write every memory of ``layer`` (a consistent snapshot), oldest first; returns the count.

    The file is written beside ``path`` and renamed into place, so a reader never sees half.
    """
    report = progress or no_progress
    searcher = store.index(layer).searcher()
    total = int(searcher.num_docs)
    hits = []
    if total:
        hits = searcher.search(
            tantivy.Query.all_query(), total, count=False, order_by_field=TIMESTAMP, order=tantivy.Order.Asc
        ).hits
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            for done, (_, address) in enumerate(hits, start=1):
                memory = to_memory(searcher.doc(address), layer)
                line = {"id": memory.id, "content": memory.content, "timestamp": memory.timestamp.isoformat()}
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
                if done % PROGRESS_EVERY == 0:
                    report(done, total, "exporting")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise InvalidInput(f"export file {str(path)!r} cannot be written ({err.strerror})") from None
    report(total, total, "exported")
    return len(hits)
