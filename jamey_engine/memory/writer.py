"""Group commit: one writer thread per layer and process, sharing each commit among callers.

Callers queue operations (add documents, delete an id, or a bulk job) and wait on a future.
The thread takes everything queued, and under the SHARED switch lock resolves the layer's
current generation, opens (or reuses) the tantivy writer, applies the operations, commits
once and resolves every future. So ``store`` returns only after the commit that holds its
document, and 32 concurrent callers pay for a handful of commits instead of 32.

tantivy allows one writer per index across processes and fails at once with LockBusy; the
thread retries with backoff up to ``lock_timeout`` and then fails the waiting callers with
Busy. It keeps the writer only while work flows (closing it after a short idle, or after
holding it for ``max_hold`` seconds) so other processes get their turn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import tantivy

from jamey_engine.errors import Busy, JameyError
from jamey_engine.memory.generations import Generations
from jamey_engine.memory.schema import ID, make_document, open_index

log = logging.getLogger("jamey_engine.memory")

SMALL_HEAP = 64_000_000  # group commits: one indexing thread, a modest arena
BULK_HEAP = 512_000_000  # imports and batches: the arena is allocated only as it fills
BULK_THREADS = 2


def open_writer(index: tantivy.Index, heap: int, threads: int, deadline: float, layer: str) -> Any:
    """Open a tantivy writer, retrying while another process holds the index lock.

    Raises Busy naming the layer once ``deadline`` (monotonic seconds) has passed.
    """
    delay = 0.002
    while True:
        try:
            return index.writer(heap, threads)
        except ValueError as err:
            if "LockBusy" not in str(err) and "lock" not in str(err).lower():
                raise
            if time.monotonic() >= deadline:
                raise Busy(f"layer {layer!r} is being written by another process; try again") from None
            time.sleep(delay)
            delay = min(delay * 1.5, 0.05)


class BulkSink:
    """What a bulk job writes through: ``add`` one memory, ``done`` counts them."""

    def __init__(self, writer: Any, added: int) -> None:
        self._writer = writer
        self._added = added
        self.done = 0

    def add(self, memory_id: str, content: str, timestamp: datetime) -> None:
        """Queue one document into the pending commit."""
        self._writer.add_document(make_document(memory_id, content, timestamp, self._added))
        self.done += 1


@dataclass
class _Op:
    kind: str  # "add" | "delete" | "bulk" | "flush"
    future: Future[Any] = field(default_factory=Future)
    docs: list[tuple[str, str, datetime]] = field(default_factory=list)
    memory_id: str = ""
    job: Callable[[BulkSink], Any] | None = None


class LayerWriter:
    """The per-process writer of one layer (see the module docstring)."""

    def __init__(
        self,
        layer: str,
        generations: Generations,
        lock_timeout: float,
        idle_close: float = 0.3,
        max_hold: float = 1.0,
    ) -> None:
        self.layer = layer
        self.generations = generations
        self.lock_timeout = lock_timeout
        self.idle_close = idle_close
        self.max_hold = max_hold
        self.commits = 0
        self._queue: list[_Op] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._writer: Any = None
        self._writer_mode = ""
        self._writer_since = 0.0
        self._generation = ""
        self._index: tantivy.Index | None = None

    # -- callers ----------------------------------------------------------------------
    def _submit(self, op: _Op) -> Future[Any]:
        with self._cond:
            if self._stopping:
                raise JameyError(f"layer {self.layer!r}: the memory store is closed")
            self._queue.append(op)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"jamey-memory-writer-{self.layer}", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return op.future

    def add(self, docs: list[tuple[str, str, datetime]]) -> Future[Any]:
        """Queue documents (id, content, timestamp); the future resolves once they are committed."""
        return self._submit(_Op("add", docs=docs))

    def delete(self, memory_id: str) -> Future[Any]:
        """Queue the deletion of one id; the future resolves once it is committed."""
        return self._submit(_Op("delete", memory_id=memory_id))

    def bulk(self, job: Callable[[BulkSink], Any]) -> Future[Any]:
        """Run ``job(sink)`` alone with a large writer and commit once (rolled back if it raises)."""
        return self._submit(_Op("bulk", job=job))

    def flush(self) -> None:
        """Wait until everything queued before this call is committed (or failed)."""
        if self._thread is None:
            return
        self._submit(_Op("flush")).result()

    def close(self) -> None:
        """Commit what is queued, release the tantivy writer and stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    # -- the thread ---------------------------------------------------------------------
    def _take(self) -> list[_Op] | None:
        """The next group of operations; [] after an idle spell (release the writer); None to stop."""
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                if self._writer is not None:
                    if not self._cond.wait(self.idle_close) and not self._queue:
                        return []
                else:
                    self._cond.wait()
            if self._queue[0].kind == "bulk":
                return [self._queue.pop(0)]
            count = next((i for i, op in enumerate(self._queue) if op.kind == "bulk"), len(self._queue))
            ops, self._queue = self._queue[:count], self._queue[count:]
            return ops

    def _run(self) -> None:
        while True:
            ops = self._take()
            if ops is None:
                break
            if ops:
                self._process(ops)
            else:
                self._release_writer()
        self._release_writer()

    def _process(self, ops: list[_Op]) -> None:
        bulk = ops[0].kind == "bulk"
        result: Any = None
        try:
            if all(op.kind == "flush" for op in ops):
                for op in ops:
                    op.future.set_result(None)
                return
            with self.generations.shared(f"layer {self.layer!r}"):
                writer = self._acquire("bulk" if bulk else "small")
                added = time.time_ns()
                if bulk:
                    job = ops[0].job
                    assert job is not None
                    result = job(BulkSink(writer, added))
                else:
                    for op in ops:
                        if op.kind == "add":
                            for memory_id, content, timestamp in op.docs:
                                writer.add_document(make_document(memory_id, content, timestamp, added))
                        elif op.kind == "delete":
                            writer.delete_documents_by_term(ID, op.memory_id)
                writer.commit()
                self.commits += 1
        except BaseException as err:
            self._discard_writer()
            for op in ops:
                if not op.future.done():
                    op.future.set_exception(err)
            if not isinstance(err, Exception):
                raise
            return
        for op in ops:
            op.future.set_result(result if bulk else None)
        if bulk or time.monotonic() - self._writer_since > self.max_hold:
            self._release_writer()

    def _acquire(self, mode: str) -> Any:
        generation = self.generations.read()[self.layer]
        if generation != self._generation or mode != self._writer_mode:
            self._release_writer()
        if self._index is None or generation != self._generation:
            self._index = open_index(self.generations.layer_path(self.layer, generation), self.layer)
            self._generation = generation
        if self._writer is None:
            heap, threads = (BULK_HEAP, BULK_THREADS) if mode == "bulk" else (SMALL_HEAP, 1)
            deadline = time.monotonic() + self.lock_timeout
            self._writer = open_writer(self._index, heap, threads, deadline, self.layer)
            self._writer_mode = mode
            self._writer_since = time.monotonic()
        return self._writer

    def _release_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.wait_merging_threads()
            except Exception:  # a merge into a replaced generation may fail; the lock is freed anyway
                log.debug("closing the %s writer", self.layer, exc_info=True)

    def _discard_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.rollback()
                writer.wait_merging_threads()
            except Exception:
                log.debug("discarding the %s writer", self.layer, exc_info=True)
