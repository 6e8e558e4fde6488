"""This process's write-ahead logs: each layer's log, in-memory tier and group commit, and
the flushes that move the logged records into the on-disk index.

``MemoryStore`` holds one ``WriteAheadLogs`` and, with the log on, sends every small write
through it. A record's life:

1. **append**: ``log_writer(layer)`` queues it; the layer's ``LogWriter`` appends what is
   queued in one write and one fdatasync to the active segment of the layer's ``LayerLog``
   (memory/wal.py), shared by every process. The caller returns once it is durable.
2. **tier**: the same thread puts it into this process's ``Tier`` (memory/tier.py), so this
   process's searches, gets and counts see it before any flush (see ``unflushed``).
3. **flush**: ``flush_layer`` seals the current epoch and applies every sealed record, any
   process's, to the on-disk index in one commit. With ``flusher="inline"`` (the library, the
   CLI) it runs every ``flush_interval`` on a background thread, early once a tier holds
   ``flush_docs`` memories, before a layer first serves in this process (replaying what a dead
   process left), and at close or exit. With ``flusher="process"`` (``jamey serve``'s workers)
   this process never flushes on its own: the data dir's one flusher process does it
   (memory/flusher.py), and a full tier only asks it to come early (``wal.flush-wanted``).
4. **marker**: the flush records the highest flushed segment in ``wal.flushed`` and removes
   the segments. Other processes see the records from here, in the index.
5. **drop**: each process's tier forgets the flushed epochs: the flushing process at once,
   the others when ``sync_tier`` next sees the marker change (the store then reloads its
   reader first, so no memory is missing between the two tiers).

The logs share the store's lock: the store's closing and its writers change together with
the log writers, in the order ``close`` relies on.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Protocol

import tantivy

from jamey_engine.errors import InvalidInput
from jamey_engine.memory.generations import Generations
from jamey_engine.memory.log_writer import LogWriter
from jamey_engine.memory.schema import ID, SCHEMA
from jamey_engine.memory.tier import Epoch, Tier
from jamey_engine.memory.wal import FLUSHED, LayerLog
from jamey_engine.memory.writer import BulkSink, LayerWriter

log = logging.getLogger("jamey_engine.memory")

SMALL_FLUSH = 50_000  # records and memories a flush indexes with the small writer arena


class LogOwner(Protocol):
    """What the logs need of the store that holds them (``MemoryStore``)."""

    def writer(self, layer: str) -> LayerWriter:
        """The group-commit writer of ``layer``'s index (a flush commits through it)."""
        ...

    def index(self, layer: str) -> tantivy.Index:
        """``layer``'s index (raising StorageCorrupt if it cannot be read)."""
        ...

    def _flush_seen(self, layer: str) -> None:
        """A flush of ``layer`` committed: reload the index before the next search."""
        ...

    def close(self) -> None:
        """Flush and release everything (run at interpreter exit)."""
        ...


class WriteAheadLogs:
    """The write-ahead logs of one store in this process (see the module docstring).

    Thread-safe, under the store's ``lock``. The store is held weakly (it holds these logs),
    except by the flush thread, which keeps it alive until ``close``: a store dropped without
    closing is still there for the flush at interpreter exit.
    """

    def __init__(
        self,
        owner: LogOwner,
        root: Path,
        generations: Generations,
        lock: threading.Lock,
        *,
        lock_timeout: float,
        flush_interval: float,
        flush_docs: int,
        flusher: str = "inline",
    ) -> None:
        self._owner = weakref.ref(owner)
        self.inline = flusher != "process"
        self.root = root
        self.generations = generations
        self.lock_timeout = lock_timeout
        self.flush_interval = flush_interval
        self.flush_docs = flush_docs
        self._lock = lock
        self._layer_logs: dict[str, LayerLog] = {}
        self._tiers: dict[str, Tier] = {}
        self.log_writers: dict[str, LogWriter] = {}
        self.opened: set[str] = set()  # layers whose log was replayed before they first served
        self._serve_locks: dict[str, threading.Lock] = {}
        self._flush_wake = threading.Event()
        self._flusher: threading.Thread | None = None
        self._exit_hook = False
        self.closing = False
        self.flushes = 0
        self.flush_failures = 0
        self.flush_seconds = 0.0

    def _store(self) -> LogOwner:
        owner = self._owner()
        if owner is None:  # only reachable through a store that is gone
            raise InvalidInput("the memory store is closed")
        return owner

    def fdatasyncs(self) -> int:
        """Group commits to the layers' logs by this process so far: one write and one fdatasync
        each (stores per commit = stores / this; a disk does a few thousand a second)."""
        with self._lock:
            return sum(writer.appends for writer in self.log_writers.values())

    def layer_log(self, layer: str) -> LayerLog:
        """The write-ahead log of ``layer`` (shared by every process; see memory/wal.py)."""
        with self._lock:
            found = self._layer_logs.get(layer)
            if found is None:
                found = self._layer_logs[layer] = LayerLog(self.root / layer, layer, self.lock_timeout)
            return found

    def _tier(self, layer: str) -> Tier:
        with self._lock:
            tier = self._tiers.get(layer)
            if tier is None:
                tier = self._tiers[layer] = Tier()
            return tier

    def log_writer(self, layer: str) -> LogWriter:
        """This process's appender of ``layer``'s log, started (with the flush thread) on first
        use. Raises InvalidInput once the store is closing, StorageCorrupt for an unreadable layer."""
        self.serve(layer)
        with self._lock:
            # closing is set before the store's closed, and never cleared: it covers both.
            if self.closing:
                raise InvalidInput("the memory store is closed")
            found = self.log_writers.get(layer)
            if found is not None:
                return found
        owner = self._store()
        owner.index(layer)  # a layer that cannot be read takes no writes either (StorageCorrupt)
        wal, tier = self.layer_log(layer), self._tier(layer)

        def written() -> None:
            if not self.inline:
                # Nothing here flushes, so a process that only writes must still forget what the
                # flusher moved into the index (a stat per group commit), or its tier would grow.
                self.sync_tier(layer)
            with tier.lock:
                full = tier.pending() >= self.flush_docs
            if full and self.inline:
                self._flush_wake.set()
            elif full:
                wal.want_flush()

        with self._lock:
            found = self.log_writers.get(layer)
            if found is None:
                found = self.log_writers[layer] = LogWriter(wal, tier, written)
            if self._flusher is None and self.inline:
                self._flusher = threading.Thread(
                    target=self._flush_loop, args=(owner,), name="jamey-memory-flush", daemon=True
                )
                self._flusher.start()
            if not self._exit_hook:
                # A process that ends without close() (a notebook kernel, a script) still flushes
                # at interpreter exit; only a kill leaves records for the next opener to replay.
                self._exit_hook = True
                atexit.register(_close_at_exit, weakref.ref(owner))
            return found

    def serve(self, layer: str) -> None:
        """Before ``layer`` first serves in this process, replay its log into the index (inline
        only: under a flusher process, what a dead process left is flushed within its interval)."""
        if layer in self.opened:
            return
        if not self.inline:
            with self._lock:
                self.opened.add(layer)
            return
        with self._lock:
            gate = self._serve_locks.setdefault(layer, threading.Lock())
        with gate:  # concurrent first callers wait for one replay
            if layer in self.opened:
                return
            self.generations.ensure()
            wal = self.layer_log(layer)
            if wal.segments():
                self.flush_layer(layer)
            with self._lock:
                self.opened.add(layer)

    def sync_tier(self, layer: str) -> Tier | None:
        """This process's tier of ``layer`` after forgetting what any process has flushed."""
        self.serve(layer)
        with self._lock:
            tier = self._tiers.get(layer)
        if tier is None:
            return None
        try:
            st = os.stat(self.root / layer / FLUSHED)
            key: tuple[int, int] | None = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            key = None
        if key != tier.marker:
            flushed = self.layer_log(layer).flushed_seq()
            self._store()._flush_seen(layer)  # before the drop: no search runs without both
            with tier.lock:
                tier.drop_upto(flushed)
                tier.marker = key
        return tier

    def flush_layer(self, layer: str) -> int:
        """Move every record in ``layer``'s log (any process's) into the on-disk index in one
        commit, then remove the flushed segments; returns the records applied.

        Serialized across processes by the log's flush lock. Raises Busy (the flush lock, the
        switch lock or the index writer stayed taken), LogCorrupt (damage in the log).
        """
        wal = self.layer_log(layer)
        if not wal.segments():
            return 0
        started = time.monotonic()
        with wal.flush_lock():
            upto = wal.seal()
            # Epochs at or below the flushed mark are in the index already (a flush that died
            # while removing its files left them): never applied twice.
            records = wal.read(upto, after=wal.flushed_seq()) if upto > 0 else []
            if records:
                idempotent = wal.begin_flush(upto)

                def job(sink: BulkSink) -> None:
                    for record in records:
                        if record.delete is not None:
                            sink.delete(record.delete)
                        for memory_id, content, when in record.adds:
                            if idempotent:
                                sink.delete(memory_id)
                            sink.add(memory_id, content, when)

                # A routine flush (seconds of writes) fits the small arena: the flusher process
                # stays lean; a large backlog (a replay after downtime) gets the bulk writer.
                small = sum(len(r.adds) + 1 for r in records) <= SMALL_FLUSH
                self._store().writer(layer).bulk(job, small=small).result()
            if upto > 0 and (records or any(seq <= upto for seq in wal.segments())):
                wal.end_flush(upto, time.monotonic() - started if records else None)
        tier = self._tiers.get(layer)
        if tier is not None:
            with tier.lock:
                tier.drop_upto(upto)
        if records:
            self.flushes += 1
            self.flush_seconds += time.monotonic() - started
        return len(records)

    def _flush_loop(self, owner: LogOwner) -> None:
        # ``owner`` is unused but held: the store stays alive while this thread runs.
        while True:
            self._flush_wake.wait(self.flush_interval)
            self._flush_wake.clear()
            with self._lock:
                if self.closing:
                    return
                layers = list(self.log_writers)
            for layer in layers:
                try:
                    self.flush_layer(layer)
                except Exception as err:
                    self.flush_failures += 1
                    log.warning("layer %s: flushing the write-ahead log failed (%s)", layer, err)

    # -- closing, in the store's order: stop writing, flush, then release ---------------------
    def begin_close(self) -> tuple[list[tuple[str, LogWriter]], threading.Thread | None]:
        """Mark the logs closing and take the log writers and the flush thread. Hold the lock."""
        self.closing = True
        log_writers = list(self.log_writers.items())
        self.log_writers.clear()
        flusher, self._flusher = self._flusher, None
        return log_writers, flusher

    def finish_writes(self, taken: tuple[list[tuple[str, LogWriter]], threading.Thread | None]) -> None:
        """Stop the flush thread, append what is queued and flush each layer written.

        A flush that fails here (Busy, disk full) loses nothing: the records stay in the log
        and the next process to open the layer replays them.
        """
        log_writers, flusher = taken
        self._flush_wake.set()
        if flusher is not None:
            flusher.join()
        for layer, log_writer in log_writers:
            log_writer.close()
            if not self.inline:
                continue  # the flusher process takes the records from the log
            try:
                self.flush_layer(layer)
            except Exception as err:
                log.warning("layer %s: flush at close failed; the log keeps the records (%s)", layer, err)

    def release(self) -> list[LayerLog]:
        """Forget every layer's log and return them, for the store to close. Hold the lock."""
        layer_logs = list(self._layer_logs.values())
        self._layer_logs.clear()
        return layer_logs


def _close_at_exit(ref: weakref.ReferenceType[LogOwner]) -> None:
    store = ref()
    if store is not None:
        try:
            store.close()
        except Exception:
            log.warning("closing the memory store at exit failed", exc_info=True)


def on_disk(searcher: Any, memory_id: str) -> bool:
    """Does ``searcher`` (an index) hold the memory ``memory_id``?"""
    return bool(searcher.search(tantivy.Query.term_query(SCHEMA, ID, memory_id), 1, count=False).hits)


def unflushed(tier: Tier, searcher: Any) -> list[Epoch]:
    """The tier's epochs whose memories ``searcher`` (the on-disk index) does not hold yet.

    A flush (by any process) moves whole segments in one commit, so one memory of an epoch
    on disk means all of it is: the epoch is skipped until the flushed marker drops it. This
    closes the window between a flush's commit and its marker, where a memory would be
    counted in both tiers. Hold ``tier.lock``.
    """
    out = []
    for epoch in tier.epochs.values():
        probe = next(iter(epoch.docs), None)
        if probe is None or not on_disk(searcher, probe):
            out.append(epoch)
    return out
