"""The in-memory tier of one layer.

A process that writes a layer keeps what it logged but was not yet flushed into the on-disk
index in RAM tantivy indexes, one per log segment (an *epoch*), so a flush drops whole
epochs. Deletes are kept as tombstones until flushed, and filter the on-disk results.
``memory/log_writer.py`` puts each durable group of writes here before its callers return.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import tantivy

from jamey_engine.memory.schema import ID, SCHEMA, make_document
from jamey_engine.memory.wal import Doc

log = logging.getLogger("jamey_engine.memory")

RAM_HEAP = 15_000_000  # tantivy's smallest arena per indexing thread


class Epoch:
    """The memories this process logged into one segment: kept as tuples when written, and
    indexed into a RAM tantivy index in one go when a search next needs them (so the write
    path pays a list append, not an index insert)."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.index = tantivy.Index(SCHEMA)
        self._writer: Any = None
        self.docs: dict[str, tuple[str, datetime]] = {}
        self._unindexed: list[tuple[Doc, int]] = []
        self._removed: list[str] = []

    def add(self, docs: list[Doc], added: int) -> None:
        """Hold ``docs`` (searchable after the next ``searcher``, readable by id at once)."""
        for doc in docs:
            self.docs[doc[0]] = (doc[1], doc[2])
            self._unindexed.append((doc, added))

    def remove(self, memory_id: str) -> bool:
        """Drop one memory; True if it was here."""
        if self.docs.pop(memory_id, None) is None:
            return False
        self._removed.append(memory_id)
        return True

    def searcher(self) -> Any:
        """A searcher over everything held so far (indexes and commits what is new)."""
        if self._unindexed or self._removed:
            if self._writer is None:
                self._writer = self.index.writer(RAM_HEAP, 1)
            for (memory_id, content, when), added in self._unindexed:
                self._writer.add_document(make_document(memory_id, content, when, added))
            for memory_id in self._removed:
                self._writer.delete_documents_by_term(ID, memory_id)
            self._unindexed, self._removed = [], []
            self._writer.commit()
            self.index.reload()
        return self.index.searcher()


@dataclass
class Tier:
    """Epochs and tombstones of one layer in this process. Guard every use with ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    epochs: dict[int, Epoch] = field(default_factory=dict)
    tombstones: dict[str, tuple[int, bool]] = field(default_factory=dict)  # id -> (seq, on disk)
    flushed: int = 0
    marker: tuple[int, int] | None = None

    def add(self, seq: int, docs: list[Doc], added: int) -> None:
        """Put logged ``docs`` of segment ``seq`` into the tier (skipped if already flushed)."""
        if seq <= self.flushed:
            return
        epoch = self.epochs.get(seq)
        if epoch is None:
            epoch = self.epochs[seq] = Epoch(seq)
        epoch.add(docs, added)

    def delete(self, seq: int, memory_id: str, on_disk: bool) -> None:
        """Apply a logged delete: out of the RAM tier, and hidden on disk until flushed."""
        for epoch in self.epochs.values():
            epoch.remove(memory_id)
        if on_disk and seq > self.flushed:
            self.tombstones[memory_id] = (seq, True)

    def drop_upto(self, seq: int) -> None:
        """Forget everything of segments <= ``seq``: it is in the on-disk index now."""
        if seq <= self.flushed:
            return
        self.flushed = seq
        for old in [s for s in self.epochs if s <= seq]:
            del self.epochs[old]
        for memory_id in [m for m, (s, _) in self.tombstones.items() if s <= seq]:
            del self.tombstones[memory_id]

    def pending(self) -> int:
        """Memories and deletes held here, not yet flushed."""
        return sum(len(e.docs) for e in self.epochs.values()) + len(self.tombstones)

    def find(self, memory_id: str) -> tuple[str, datetime] | None:
        """(content, timestamp) of a memory held in RAM, or None."""
        for epoch in self.epochs.values():
            found = epoch.docs.get(memory_id)
            if found is not None:
                return found
        return None
