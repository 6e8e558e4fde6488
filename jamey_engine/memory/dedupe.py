"""Duplicate memories: find groups of equal content, and delete all but the oldest of each.

Finding reads every document once (content only) and keeps a 64-bit hash per document, not
its text, so memory stays near 16 bytes a document. Only the documents whose hash repeats are
read again, and grouped by their exact normalized text, so a hash collision can never make two
different memories one group.

Deleting goes through the prune machinery (``memory.prune.compact_layer``): the duplicates
are found again on the compaction's own snapshot, everything else is copied into a new
generation, commits made meanwhile are carried over, and the pointer switches atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import tantivy

from jamey_engine.memory.analysis import iter_addresses
from jamey_engine.memory.generations import dir_size
from jamey_engine.memory.prune import Selection, compact_layer
from jamey_engine.memory.schema import CONTENT, ID, TIMESTAMP
from jamey_engine.progress import Progress

if TYPE_CHECKING:
    from jamey_engine.memory.store import MemoryStore

# Addresses per page of the scan: only addresses and hashes are kept, so pages can be large
# (fewer pages: the keyset paging re-walks the timestamp column once per page).
SCAN_CHUNK = 100_000
GROUP_COLUMNS = ["layer", "content", "count", "first", "last", "repeat_bytes", "keep_id"]


def normalize_content(text: str) -> str:
    """The text compared for duplicates: case folded, runs of whitespace made one space, trimmed."""
    return " ".join(text.casefold().split())


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class DuplicateGroup:
    """Memories with equal (normalized) content: the oldest is kept, the others are repeats."""

    content: str
    count: int
    first: datetime
    last: datetime
    repeat_bytes: int
    keep_id: str
    repeat_ids: tuple[str, ...]


@dataclass(frozen=True)
class DuplicateScan:
    """Every duplicate group of one layer at one snapshot, biggest first."""

    layer: str
    documents: int
    groups: tuple[DuplicateGroup, ...]

    @property
    def repeats(self) -> int:
        """Documents a dedupe would delete (every copy after the oldest)."""
        return sum(group.count - 1 for group in self.groups)

    @property
    def repeat_bytes(self) -> int:
        """UTF-8 bytes of the content of those documents."""
        return sum(group.repeat_bytes for group in self.groups)

    @property
    def doomed_ids(self) -> frozenset[str]:
        """The ids a dedupe deletes."""
        return frozenset(memory_id for group in self.groups for memory_id in group.repeat_ids)


def find_duplicates(searcher: Any, layer: str, *, normalize: bool = True) -> DuplicateScan:
    """Every group of two or more memories of ``searcher``'s snapshot with equal content.

    With ``normalize`` content is compared after :func:`normalize_content`, else exactly. In
    each group the oldest memory (by timestamp, then id) is the one kept.
    """
    documents = int(searcher.num_docs)
    if documents < 2:
        return DuplicateScan(layer, documents, ())
    fold = normalize_content if normalize else str
    hashes = np.empty(documents, dtype=np.int64)
    segments = np.empty(documents, dtype=np.uint32)
    doc_ids = np.empty(documents, dtype=np.uint32)
    filled = 0
    doc = searcher.doc
    for addresses in iter_addresses(searcher, tantivy.Query.all_query(), SCAN_CHUNK):
        end = filled + len(addresses)
        hashes[filled:end] = [hash(fold(doc(address).get_first(CONTENT))) for address in addresses]
        segments[filled:end] = [address.segment_ord for address in addresses]
        doc_ids[filled:end] = [address.doc for address in addresses]
        filled = end
    hashes, segments, doc_ids = hashes[:filled], segments[:filled], doc_ids[:filled]
    _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    candidates = np.flatnonzero(counts[inverse] > 1)
    # Per group: its members as (timestamp, id, UTF-8 bytes), and the text of the oldest only,
    # so a layer full of repeats does not hold every repeat's text.
    by_text: dict[str, list[tuple[datetime, str, int]]] = {}
    oldest_text: dict[str, tuple[datetime, str, str]] = {}
    address = tantivy.DocAddress
    for segment, doc_id in zip(segments[candidates].tolist(), doc_ids[candidates].tolist(), strict=True):
        document = doc(address(segment, doc_id))
        content = str(document.get_first(CONTENT))
        key = fold(content)
        when, memory_id = document.get_first(TIMESTAMP), str(document.get_first(ID))
        by_text.setdefault(key, []).append((when, memory_id, _utf8_size(content)))
        oldest = oldest_text.get(key)
        if oldest is None or (when, memory_id) < oldest[:2]:
            oldest_text[key] = (when, memory_id, content)
    groups = []
    for key, members in by_text.items():
        if len(members) < 2:
            continue  # a hash collision, not a duplicate
        members.sort(key=lambda member: (member[0], member[1]))
        groups.append(
            DuplicateGroup(
                content=oldest_text[key][2],
                count=len(members),
                first=members[0][0],
                last=members[-1][0],
                repeat_bytes=sum(member[2] for member in members[1:]),
                keep_id=members[0][1],
                repeat_ids=tuple(member[1] for member in members[1:]),
            )
        )
    groups.sort(key=lambda group: (-group.count, group.first, group.keep_id))
    return DuplicateScan(layer, filled, tuple(groups))


def duplicates_frame(scans: Sequence[DuplicateScan]) -> pd.DataFrame:
    """One row per group of ``scans`` (see GROUP_COLUMNS), with the totals in ``attrs``."""
    rows = [
        {
            "layer": scan.layer,
            "content": group.content,
            "count": group.count,
            "first": group.first,
            "last": group.last,
            "repeat_bytes": group.repeat_bytes,
            "keep_id": group.keep_id,
        }
        for scan in scans
        for group in scan.groups
    ]
    frame = pd.DataFrame(rows, columns=GROUP_COLUMNS)
    if rows:
        frame = frame.sort_values(
            ["count", "first"], ascending=[False, True], kind="stable", ignore_index=True
        )
    frame = frame.astype({"count": "int64", "repeat_bytes": "int64"})
    for column in ("first", "last"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    documents = sum(scan.documents for scan in scans)
    repeats = sum(scan.repeats for scan in scans)
    frame.attrs.update(
        {
            "documents": documents,
            "groups": len(rows),
            "repeats": repeats,
            "repeat_bytes": sum(scan.repeat_bytes for scan in scans),
            "share": repeats / documents if documents else 0.0,
            "by_layer": {
                scan.layer: {"documents": scan.documents, "groups": len(scan.groups), "repeats": scan.repeats}
                for scan in scans
            },
        }
    )
    return frame


@dataclass(frozen=True)
class DedupeResult:
    """What a dedupe deleted (or, with ``dry_run``, would delete) from one layer.

    ``bytes_after`` is an estimate on a dry run: the size now scaled by the share that stays.
    """

    layer: str
    groups: int
    deleted: int
    repeat_bytes: int
    bytes_before: int
    bytes_after: int
    dry_run: bool


class _NoRepeats(Exception):
    """The compaction's snapshot holds no duplicate: abandon it before copying anything."""


def dedupe_layer(
    store: MemoryStore,
    layer: str,
    *,
    normalize: bool = True,
    dry_run: bool = True,
    progress: Progress | None = None,
) -> DedupeResult:
    """Delete every duplicate of ``layer`` but the oldest of each group, and free their disk.

    A dry run scans and changes nothing. Otherwise the layer is rewritten by the prune
    compaction, which finds the duplicates on its own snapshot (so what it deletes is exactly
    a set of repeats whose oldest copy stays; a layer without any is left untouched) and
    carries over every memory written meanwhile, duplicates included. The layer's write-ahead
    log is flushed first, so unflushed writes count like the others. Raises Busy, StorageCorrupt.
    """
    store.flush_layer(layer)
    if dry_run:
        scan = find_duplicates(store.index(layer).searcher(), layer, normalize=normalize)
        bytes_before = dir_size(store.layer_path(layer))
        kept = scan.documents - scan.repeats
        estimate = round(bytes_before * kept / scan.documents) if scan.documents else bytes_before
        return DedupeResult(
            layer, len(scan.groups), scan.repeats, scan.repeat_bytes, bytes_before, estimate, True
        )
    found: list[DuplicateScan] = []

    def select(snapshot: Any) -> Selection:
        current = find_duplicates(snapshot, layer, normalize=normalize)
        found.append(current)
        if not current.repeats:
            raise _NoRepeats
        doomed = current.doomed_ids
        return Selection(
            tantivy.Query.all_query(),
            lambda document: document.get_first(ID) not in doomed,
            lambda document: True,  # memories written during the dedupe are never lost
        )

    try:
        result = compact_layer(store, layer, select, progress, what="dedupe")
    except _NoRepeats:
        size = dir_size(store.layer_path(layer))
        return DedupeResult(layer, 0, 0, 0, size, size, False)
    final = found[-1]
    return DedupeResult(
        layer,
        len(final.groups),
        result.deleted,
        final.repeat_bytes,
        result.bytes_before,
        result.bytes_after,
        False,
    )
