"""MemoryStore: five tantivy layers behind one API (see the package docstring and docs/architecture.md)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tantivy

from jamey_engine.durations import utcnow
from jamey_engine.errors import Busy, InvalidInput, NotFound, StorageCorrupt
from jamey_engine.memory.generations import Generations, dir_size
from jamey_engine.memory.layers import LAYERS, MAX_QUERY_CHARS, check_layer, check_layers
from jamey_engine.memory.logs import WriteAheadLogs, on_disk, unflushed
from jamey_engine.memory.model import (
    DEFAULT_LIMIT,
    LayerSize,
    Memory,
    PruneResult,
    Sizes,
    check_content,
    check_limit,
    check_memory_id,
    check_order,
    check_timestamp,
    new_ids,
    quick_content_ok,
    quick_timestamp,
    search_window,
)
from jamey_engine.memory.schema import (
    CONTENT,
    ID,
    SCHEMA,
    TIMESTAMP,
    is_tantivy_failure,
    live_documents,
    open_index,
    read_meta,
    to_memory,
    window_query,
)
from jamey_engine.memory.tier import Tier
from jamey_engine.memory.wal import LayerLog
from jamey_engine.memory.writer import LayerWriter
from jamey_engine.progress import Progress

if TYPE_CHECKING:
    from jamey_engine.config import Settings

log = logging.getLogger("jamey_engine.memory")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_GROWTH_DAYS = 3660
# A reader unchanged this long is reloaded anyway (see MemoryStore._needs_reload).
RELOAD_AT_LEAST_EVERY = 1.0
# Batches up to this size share group commits; larger ones get a bulk writer of their own.
SMALL_BATCH = 256


class MemoryStore:
    """Five tantivy layer indexes under one ``memory/`` directory, safe to share among processes.

    Thread-safe. With the write-ahead log (``wal=True``, the default) a store is durable once
    its record is appended and fdatasynced to the layer's log (group commit), visible at once
    in this process through the in-memory tier, and visible to other processes once flushed
    into the on-disk index: within ``flush_interval`` (plus the time the flush's commit takes),
    or at ``flush_docs`` memories, or when this store closes. With ``flusher="process"`` this
    process never flushes on its own: the data dir's flusher process does (memory/flusher.py),
    within the same bound. See memory/logs.py (and wal.py, tier.py). Without it, every store waits for a tantivy commit (the older path).
    Reads reopen a layer whose generation changed and reload to see other processes' commits.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_content_bytes: int = 65536,
        lock_timeout: float = 10.0,
        wal: bool = True,
        flush_interval: float = 1.0,
        flush_docs: int = 10_000,
        flusher: str = "inline",
    ) -> None:
        if flusher not in ("inline", "process"):
            raise InvalidInput(f"flusher {flusher!r} must be 'inline' or 'process'")
        self.root = Path(root)
        self.flusher = flusher
        self.max_content_bytes = max_content_bytes
        self.lock_timeout = lock_timeout
        self.wal = wal
        self.generations = Generations(self.root, lock_timeout)
        self._lock = threading.Lock()
        self._writers: dict[str, LayerWriter] = {}
        self._readers: dict[str, _Reader] = {}
        self._closed = False
        # This process's write-ahead logs, tiers and flushes (used only with ``wal``).
        self.logs = WriteAheadLogs(
            self,
            self.root,
            self.generations,
            self._lock,
            lock_timeout=lock_timeout,
            flush_interval=flush_interval,
            flush_docs=flush_docs,
            flusher=flusher,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryStore:
        """The store in ``settings.memory_dir`` with the configured bounds, timeout and log settings."""
        return cls(
            settings.memory_dir,
            max_content_bytes=settings.max_content_bytes,
            lock_timeout=settings.lock_timeout,
            wal=settings.wal,
            flush_interval=settings.flush_interval,
            flush_docs=settings.flush_docs,
            flusher="process" if settings.flusher == "process" else "inline",
        )

    # -- plumbing -------------------------------------------------------------------------
    def writer(self, layer: str) -> LayerWriter:
        """This process's group-commit writer of ``layer`` (created on first use)."""
        with self._lock:
            if self._closed:
                raise InvalidInput("the memory store is closed")
            writer = self._writers.get(layer)
            if writer is None:
                self.generations.ensure()
                writer = self._writers[layer] = LayerWriter(layer, self.generations, self.lock_timeout)
            return writer

    def index(self, layer: str) -> tantivy.Index:
        """The index of ``layer``'s current generation, reopened after a switch and reloaded
        when a commit may have happened since its last reload (see :meth:`_needs_reload`)."""
        for attempt in range(3):
            generation = self.generations.ensure()[layer]
            path = self.generations.layer_path(layer, generation)
            with self._lock:
                cached = self._readers.get(layer)
            try:
                if cached is not None and cached.generation == generation:
                    if self._needs_reload(layer, cached):
                        cached.reload(self._commits(layer))
                    return cached.index
                meta, commits = _meta_key(path), self._commits(layer)
                index = open_index(path, layer)  # reloaded by open_index
                with self._lock:
                    self._readers[layer] = _Reader(generation, index, meta, commits, time.monotonic())
                return index
            except BaseException as err:
                if not (isinstance(err, StorageCorrupt) or is_tantivy_failure(err)):
                    raise
                # The generation may have been replaced (and removed) between the two steps.
                if attempt < 2 and self.generations.read().get(layer) != generation:
                    continue
                if isinstance(err, StorageCorrupt):
                    raise
                raise StorageCorrupt(
                    f"layer {layer!r}: index at {path} cannot be read ({err})", str(path)
                ) from None
        raise AssertionError("unreachable")

    def is_warm(self, layer: str) -> bool:
        """Is ``layer`` ready to serve a read without set-up: its log replayed in this process
        and a reader open on its current generation? (A cold read may replay a log or open an
        index: tens of milliseconds; a warm one costs a search.)"""
        if self.wal and layer not in self.logs.opened:
            return False
        reader = self._readers.get(layer)
        return reader is not None and reader.generation == self.generations.read().get(layer)

    def _commits(self, layer: str) -> int:
        writer = self._writers.get(layer)
        return writer.commits if writer is not None else 0

    def _needs_reload(self, layer: str, reader: _Reader) -> bool:
        """Has ``layer``'s index (possibly) changed since ``reader`` last reloaded?

        A reload costs ~40 µs, more than the rest of a small search, so it runs only when this
        process's writer committed since, or ``meta.json`` (which every commit, in any process,
        replaces) changed identity, or RELOAD_AT_LEAST_EVERY passed: the last bounds how stale
        a reader can be if a replaced ``meta.json`` ever came back with the same inode, times
        and size. A flush seen by ``_sync_tier`` forces a reload (``reader.meta = None``).
        """
        if reader.commits != self._commits(layer):
            return True
        if time.monotonic() - reader.at > RELOAD_AT_LEAST_EVERY:
            return True
        meta = _meta_key(self.generations.layer_path(layer, reader.generation))
        if meta != reader.meta:
            reader.meta = meta
            return True
        return False

    def layer_path(self, layer: str) -> Path:
        """The directory of ``layer``'s current generation."""
        check_layer(layer)
        return self.generations.layer_path(layer, self.generations.ensure()[layer])

    def flush(self) -> None:
        """Wait until every write queued in this process is committed, then flush every layer's
        write-ahead log (every process's records) into the on-disk index.

        Raises Busy (a lock stayed taken), LogCorrupt (a damaged log).
        """
        with self._lock:
            writers = list(self._writers.values())
            log_writers = list(self.logs.log_writers.values())
        for log_writer in log_writers:
            log_writer.drain()
        for writer in writers:
            writer.flush()
        if self.wal:
            for layer in LAYERS:
                self.flush_layer(layer)

    # -- the write-ahead logs (memory/logs.py) -------------------------------------------
    def layer_log(self, layer: str) -> LayerLog:
        """The write-ahead log of ``layer`` (shared by every process; see memory/wal.py)."""
        return self.logs.layer_log(layer)

    def flush_layer(self, layer: str) -> int:
        """Move every record in ``layer``'s log (any process's) into the on-disk index in one
        commit, then remove the flushed segments; returns the records applied (0 without the log).

        Serialized across processes by the log's flush lock. Raises Busy (the flush lock, the
        switch lock or the index writer stayed taken), LogCorrupt (damage in the log).
        """
        check_layer(layer)
        if not self.wal:
            return 0
        return self.logs.flush_layer(layer)

    def _sync_tier(self, layer: str) -> Tier | None:
        """This process's tier of ``layer`` after forgetting what any process has flushed."""
        return self.logs.sync_tier(layer) if self.wal else None

    def _flush_seen(self, layer: str) -> None:
        with self._lock:
            reader = self._readers.get(layer)
        if reader is not None:
            reader.meta = None  # the flush committed: reload before searching without its tier

    # -- writing ------------------------------------------------------------------------
    def store(self, layer: str, content: str, timestamp: str | datetime | None = None) -> Memory:
        """Store one memory; it is committed (durable, visible to every process) when this returns.

        Raises InvalidInput (bad layer, empty content, bad timestamp), PayloadTooLarge, Busy.
        """
        memory, committed = self.store_nowait(layer, content, timestamp)
        committed.result()
        return memory

    def store_nowait(
        self,
        layer: str,
        content: str,
        timestamp: str | datetime | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> tuple[Memory, Future[None] | asyncio.Future[None]]:
        """Check and queue one memory without waiting: the memory, and a future that resolves
        once the commit holding it is done (or fails with Busy or the commit's error).

        For an event loop: it blocks only for the queue's lock, so callers need no thread each
        while the commit runs. Given the running ``loop``, the future is an asyncio future of
        that loop when the write-ahead log is on (resolved with the rest of its group in one
        wake-up, memory/log_writer.py); otherwise a concurrent future (await it with
        ``completion_of``, service/wakeup.py). Bad input raises here, before anything is
        queued, as ``store`` does.
        """
        check_layer(layer)
        check_content(content, self.max_content_bytes)
        when = check_timestamp(timestamp)
        memory_id = new_ids(1)[0]
        docs = [(memory_id, content, when)]
        committed: Future[None] | asyncio.Future[None]
        if self.wal and loop is not None:
            committed = self.logs.log_writer(layer).add_waiting(docs, time.time_ns(), loop)
        elif self.wal:
            committed = self.logs.log_writer(layer).add(docs, time.time_ns())
        else:
            committed = self.writer(layer).add(docs)
        return Memory(id=memory_id, layer=layer, content=content, timestamp=when), committed

    def store_batch(self, layer: str, items: Sequence[dict[str, Any] | tuple[Any, ...] | str]) -> list[str]:
        """Store many memories in one commit; returns their ids in order. All or nothing.

        Each item is {"content": ..., "timestamp": ... (optional)}, a (content[, timestamp])
        tuple, or the content text. Raises InvalidInput naming the first bad item; nothing is
        stored then.
        """
        check_layer(layer)
        if isinstance(items, str | bytes) or not isinstance(items, Sequence):
            raise InvalidInput("items must be a list of {content, timestamp} objects")
        ids = new_ids(len(items))
        docs: list[tuple[str, str, datetime]] = []
        max_bytes = self.max_content_bytes
        for position, item in enumerate(items):
            content, stamp = _unpack(item, position)
            if not quick_content_ok(content, max_bytes):
                content = check_content(content, max_bytes, field=f"items[{position}].content")
            when = quick_timestamp(stamp) or check_timestamp(stamp, field=f"items[{position}].timestamp")
            docs.append((ids[position], str(content), when))
        if not docs:
            return []
        if len(docs) <= SMALL_BATCH and self.wal:
            self.logs.log_writer(layer).add(docs, time.time_ns()).result()
        elif len(docs) <= SMALL_BATCH:
            self.writer(layer).add(docs).result()
        else:

            def job(sink: Any) -> None:
                for memory_id, content, when in docs:
                    sink.add(memory_id, content, when)

            self.writer(layer).bulk(job).result()
        return ids

    def import_jsonl(self, layer: str, path: str | Path, progress: Progress | None = None) -> int:
        """Import a JSON Lines file ({"content", "timestamp"?} per line) in one commit; returns the count.

        Raises InvalidInput naming the file and line of the first bad line (nothing is stored).
        """
        from jamey_engine.memory.jsonl import import_jsonl

        return import_jsonl(self, check_layer(layer), Path(path), progress)

    def export_jsonl(self, layer: str, path: str | Path, progress: Progress | None = None) -> int:
        """Write every memory of ``layer``, oldest first, as JSON Lines; returns the count."""
        from jamey_engine.memory.jsonl import export_jsonl

        self.flush_layer(check_layer(layer))
        return export_jsonl(self, check_layer(layer), Path(path), progress)

    def delete(self, layer: str, memory_id: str) -> None:
        """Delete one memory (committed when this returns). Raises NotFound, InvalidInput, Busy."""
        memory = self.get(layer, memory_id)
        if not self.wal:
            self.writer(layer).delete(memory.id).result()
            return
        held = on_disk(self.index(layer).searcher(), memory.id)
        self.logs.log_writer(layer).delete(memory.id, held).result()

    # -- reading ------------------------------------------------------------------------
    def search(
        self,
        layer: str,
        query: str,
        *,
        limit: int = DEFAULT_LIMIT,
        order: str = "score",
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        lenient: bool = False,
    ) -> list[Memory]:
        """Search ``layer`` with tantivy query syntax (``*`` matches all).

        ``order`` is "score" (best first, with scores) or "newest". ``since`` is inclusive and
        ``until`` exclusive, to the second. Raises InvalidInput for a malformed query, a limit
        outside 1..1000, a bad order or time. With ``lenient``, a query the parser cannot read
        is not an error: it is searched as tantivy's lenient parser reads it (the parts it can).
        """
        check_layer(layer)
        check_limit(limit)
        check_order(order)
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("query must not be empty; use * to match every memory")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidInput(f"query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
        window = search_window(since, until)
        if window is None:
            return []  # an empty window, or one wholly outside the stored years: nothing is in it
        start, end = window
        tier = self._sync_tier(layer)
        index = self.index(layer)
        try:
            parsed = index.parse_query(query, [CONTENT])
        except ValueError as err:
            if not lenient:
                raise InvalidInput(f"query {query!r} is malformed: {err}") from None
            parsed, _ = index.parse_query_lenient(query, [CONTENT])
        if start is not None or end is not None:
            parsed = tantivy.Query.boolean_query(
                [(tantivy.Occur.Must, parsed), (tantivy.Occur.Must, window_query(start, end))]
            )
        searcher = index.searcher()
        if tier is None:
            return _search_one(searcher, parsed, limit, order, layer, query)
        with tier.lock:
            hidden = set(tier.tombstones)
            in_ram = [epoch.searcher() for epoch in unflushed(tier, searcher)]
        if not in_ram and not hidden:
            return _search_one(searcher, parsed, limit, order, layer, query)
        # Rank the hits of every tier by score (or time) first, then load only the documents
        # returned: the stored fields are most of a search's cost.
        sources = [(searcher, min(limit + len(hidden), 10_000))] + [(ram, limit) for ram in in_ram]
        candidates: list[tuple[float, int, Any]] = []
        for position, (source, wanted) in enumerate(sources):
            for key, address in _hits(source, parsed, wanted, order, query):
                candidates.append((key, position, address))
        candidates.sort(key=lambda hit: hit[0], reverse=True)  # stable: the disk's ties first
        found: list[Memory] = []
        for key, position, address in candidates:
            memory = to_memory(sources[position][0].doc(address), layer, key if order == "score" else None)
            if memory.id in hidden:
                continue
            hidden.add(memory.id)  # a memory flushed by another process may be in both tiers
            found.append(memory)
            if len(found) == limit:
                break
        return found

    def get(self, layer: str, memory_id: str) -> Memory:
        """The memory with ``memory_id`` in ``layer``. Raises NotFound, InvalidInput."""
        check_layer(layer)
        canonical = check_memory_id(memory_id)
        tier = self._sync_tier(layer)
        if tier is not None:
            with tier.lock:
                held = tier.find(canonical)
                gone = canonical in tier.tombstones
            if held is not None:
                return Memory(id=canonical, layer=layer, content=held[0], timestamp=held[1])
            if gone:
                raise NotFound(f"memory {canonical} not found in layer {layer!r}")
        searcher = self.index(layer).searcher()
        hits = searcher.search(tantivy.Query.term_query(SCHEMA, ID, canonical), 1, count=False).hits
        if not hits:
            raise NotFound(f"memory {canonical} not found in layer {layer!r}")
        return to_memory(searcher.doc(hits[0][1]), layer)

    def count(self, layer: str) -> int:
        """Documents in ``layer`` now, as this process sees them (its unflushed writes included)."""
        check_layer(layer)
        tier = self._sync_tier(layer)
        searcher = self.index(layer).searcher()
        total = int(searcher.num_docs)
        if tier is not None:
            with tier.lock:
                total += sum(len(e.docs) for e in unflushed(tier, searcher))
                total -= sum(1 for memory_id in tier.tombstones if on_disk(searcher, memory_id))
        return total

    # -- monitoring ---------------------------------------------------------------------
    def layer_size(self, layer: str) -> LayerSize:
        """Bytes on disk, documents and segments of ``layer``'s current generation.

        With the write-ahead log, the layer's log is flushed first, so the figures hold every
        acknowledged write; if that flush stays Busy, the figures are the index's as it is.
        """
        check_layer(layer)
        # Under a flusher process a serving process never indexes: the figures are the index's.
        if self.wal and self.flusher == "inline" and self.layer_log(layer).active_bytes():
            try:
                self.logs.serve(layer)
                self.flush_layer(layer)
            except Busy as err:
                log.warning("layer %s: sizes without the unflushed log (%s)", layer, err)
        path = self.layer_path(layer)
        try:
            meta = read_meta(path)
        except FileNotFoundError:
            raise StorageCorrupt(
                f"layer {layer!r}: index directory {path} is missing or damaged", str(path)
            ) from None
        except (OSError, ValueError) as err:
            raise StorageCorrupt(
                f"layer {layer!r}: {path / 'meta.json'} is unreadable ({err})", str(path)
            ) from None
        return LayerSize(layer, dir_size(path), live_documents(meta), len(meta.get("segments", [])))

    def layer_bytes(self, layers: Sequence[str] | None = None) -> dict[str, int]:
        """Bytes on disk of each of ``layers`` (every layer by default): a directory listing
        each, without flushing the log or reading the index's meta (cheaper than layer_size,
        for an estimate such as a backup's free-space check)."""
        current = self.generations.ensure()
        return {
            layer: dir_size(self.generations.layer_path(layer, current[layer]))
            for layer in check_layers(layers)
        }

    def sizes(self) -> Sizes:
        """Disk use of every layer and the totals (the seed's get_all_index_sizes)."""
        layers = {layer: self.layer_size(layer) for layer in LAYERS}
        return Sizes(
            layers=layers,
            total_bytes=sum(s.bytes for s in layers.values()),
            total_documents=sum(s.documents for s in layers.values()),
        )

    def growth(self, days: int = 30) -> list[dict[str, Any]]:
        """Documents per day (by memory timestamp, UTC) per layer over the last ``days`` days.

        One row {"day": date, "layer": str, "documents": int} per day and layer, zeros included,
        oldest first. Raises InvalidInput unless 1 <= days <= 3660.
        """
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_GROWTH_DAYS:
            raise InvalidInput(f"days {days!r} must be a whole number from 1 to {MAX_GROWTH_DAYS}")
        today = utcnow().date()
        first = today - timedelta(days=days - 1)
        start = datetime(first.year, first.month, first.day, tzinfo=UTC)
        spec = {"per_day": {"date_histogram": {"field": TIMESTAMP, "fixed_interval": "1d"}}}
        rows: list[dict[str, Any]] = []
        for layer in LAYERS:
            counts: dict[date, int] = {}
            tier = self._sync_tier(layer)
            searchers = [self.index(layer).searcher()]
            if tier is not None:
                with tier.lock:
                    searchers += [epoch.searcher() for epoch in unflushed(tier, searchers[0])]
            for searcher in searchers:
                if searcher.num_docs:
                    result = searcher.aggregate(window_query(start, None), spec)
                    for bucket in result["per_day"]["buckets"]:
                        day = datetime.fromtimestamp(bucket["key"] / 1000, UTC).date()
                        counts[day] = counts.get(day, 0) + int(bucket["doc_count"])
            for offset in range(days):
                day = first + timedelta(days=offset)
                rows.append({"day": day, "layer": layer, "documents": counts.get(day, 0)})
        rows.sort(key=lambda row: (row["day"], LAYERS.index(row["layer"])))
        return rows

    # -- maintenance --------------------------------------------------------------------
    def prune(
        self,
        older_than: timedelta | None,
        layers: Sequence[str] | None = None,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
        before: datetime | None = None,
    ) -> list[PruneResult]:
        """Delete memories older than ``older_than`` and reclaim their disk (see memory.prune).

        ``before`` (with ``older_than`` None) cuts at an exact instant instead: memories stamped
        before it go (retention uses it). With ``dry_run`` nothing changes and the results say
        what would go. A layer with nothing old enough is left untouched. Raises InvalidInput, Busy.
        """
        from jamey_engine.memory.prune import prune_layer

        chosen = check_layers(layers)
        if before is not None and older_than is None:
            cutoff = max(check_timestamp(before, field="before"), EPOCH)
        elif not isinstance(older_than, timedelta) or older_than <= timedelta(0) or before is not None:
            raise InvalidInput(f"older_than {older_than!r} must be a duration longer than zero")
        else:
            try:
                cutoff = max(utcnow() - older_than, EPOCH)
            except OverflowError:
                cutoff = EPOCH  # older than the calendar: nothing can be that old
        for layer in chosen:  # unflushed writes are pruned (and counted) like flushed ones
            self.flush_layer(layer)
        return [prune_layer(self, layer, cutoff, dry_run=dry_run, progress=progress) for layer in chosen]

    def snapshot(self, dest: Path) -> dict[str, int]:
        """A consistent point-in-time copy (hard links) of every layer into dest/<layer>/."""
        from jamey_engine.memory.portable import snapshot

        return snapshot(self, Path(dest))

    def restore_layers(self, src: Path) -> None:
        """Install src/<layer>/ as the new generation of every layer, switching all five at once."""
        from jamey_engine.memory.portable import restore_layers

        restore_layers(self, Path(src))

    def validate_layers(self, src: Path) -> dict[str, int]:
        """Open each staged index src/<layer>/, run a query; docs per layer. Raises StorageCorrupt."""
        from jamey_engine.memory.portable import validate_layers

        return validate_layers(Path(src))

    def close(self) -> None:
        """Append and flush queued writes, release every writer and reader. Idempotent.

        A flush that fails here (Busy, disk full) loses nothing: the records stay in the log
        and the next process to open the layer replays them.
        """
        with self._lock:
            if self._closed:
                return
            taken = self.logs.begin_close()
        self.logs.finish_writes(taken)
        with self._lock:
            self._closed = True
            writers = list(self._writers.values())
            self._writers.clear()
            self._readers.clear()
            logs = self.logs.release()
        for writer in writers:
            writer.close()
        for wal in logs:
            wal.close()


class _Reader:
    """This process's open index of one layer generation, and what it saw at its last reload."""

    __slots__ = ("at", "commits", "generation", "index", "meta")

    def __init__(
        self, generation: str, index: tantivy.Index, meta: tuple[int, ...] | None, commits: int, at: float
    ) -> None:
        self.generation = generation
        self.index = index
        self.meta = meta
        self.commits = commits
        self.at = at

    def reload(self, commits: int) -> None:
        # The marks first, then the reload: a commit in between is seen now or by the next check.
        self.commits = commits
        self.at = time.monotonic()
        self.index.reload()


def _meta_key(path: Path) -> tuple[int, ...] | None:
    """The identity of a layer index's ``meta.json`` (None when it cannot be read)."""
    try:
        st = os.stat(path / "meta.json")
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _hits(
    searcher: Any, parsed: tantivy.Query, limit: int, order: str, query: str
) -> list[tuple[float, Any]]:
    """(score or timestamp, address) of the best ``limit`` hits in one index."""
    try:
        if order == "newest":
            return list(
                searcher.search(
                    parsed, limit, count=False, order_by_field=TIMESTAMP, order=tantivy.Order.Desc
                ).hits
            )
        return list(searcher.search(parsed, limit, count=False).hits)
    except ValueError as err:
        raise InvalidInput(f"query {query!r} cannot run: {err}") from None


def _search_one(
    searcher: Any, parsed: tantivy.Query, limit: int, order: str, layer: str, query: str
) -> list[Memory]:
    try:
        if order == "newest":
            result = searcher.search(
                parsed, limit, count=False, order_by_field=TIMESTAMP, order=tantivy.Order.Desc
            )
            return [to_memory(searcher.doc(address), layer) for _, address in result.hits]
        result = searcher.search(parsed, limit, count=False)
    except ValueError as err:
        raise InvalidInput(f"query {query!r} cannot run: {err}") from None
    return [to_memory(searcher.doc(address), layer, score) for score, address in result.hits]


def _unpack(item: object, position: int) -> tuple[object, object]:
    if (
        type(item) is dict
        and "content" in item
        and len(item) <= 2
        and (len(item) == 1 or "timestamp" in item)
    ):
        return item["content"], item.get("timestamp")  # the common shape, checked cheaply
    field = f"items[{position}]"
    if isinstance(item, str):
        return item, None
    if isinstance(item, dict):
        unknown = set(item) - {"content", "timestamp", "id", "layer"}
        if unknown:
            raise InvalidInput(f"{field} has unknown field(s): {', '.join(sorted(map(str, unknown)))}")
        if "content" not in item:
            raise InvalidInput(f"{field} has no content")
        return item["content"], item.get("timestamp")
    if isinstance(item, tuple | list) and 1 <= len(item) <= 2:
        return item[0], item[1] if len(item) == 2 else None
    raise InvalidInput(f"{field} must be an object with content (and timestamp), not {type(item).__name__}")
