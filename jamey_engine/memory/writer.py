"""Group commit into the index: one writer thread per layer and process, sharing each commit
among callers (the queue is ``memory/group_commit.py``'s, shared with the log's appender).

Callers queue operations (add documents, delete an id, or a bulk job) and wait on a future.
The thread takes everything queued, and under the SHARED switch lock resolves the layer's
current generation, opens (or reuses) the tantivy writer, applies the operations, commits
once and resolves every future. So ``store`` returns only after the commit that holds its
document, and 32 concurrent callers pay for a handful of commits instead of 32.

tantivy allows one writer per index across processes and fails at once with LockBusy; the
thread retries with backoff up to ``lock_timeout`` and then fails the waiting callers with
Busy. It keeps the writer only while work flows: it closes it after a short idle, and hands
it over after the current commit when another process is waiting (a waiter holds a shared
flock on ``memory/.<layer>.writers-waiting``; the holder probes it after each commit).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import tantivy

from jamey_engine.errors import Busy
from jamey_engine.fsutil import is_held
from jamey_engine.memory.generations import Generations
from jamey_engine.memory.group_commit import GroupCommitQueue
from jamey_engine.memory.schema import ID, make_document, open_index

log = logging.getLogger(__name__)

SMALL_HEAP = 64_000_000  # group commits: one indexing thread, a modest arena
BULK_HEAP = 512_000_000  # imports and batches: the arena is allocated only as it fills
BULK_THREADS = 2
COALESCE_STEP = 0.001  # stop gathering once no caller arrived for this long...
COALESCE_MAX = 0.006  # ...or after this long in all
COALESCE_LIMIT = 1024
YIELD_AFTER_HOLD = 0.025
LOCK_POLL_MAX = 0.01


def open_writer(
    index: tantivy.Index, heap: int, threads: int, deadline: float, layer: str, waiting: Path | None = None
) -> Any:
    """Open a tantivy writer, retrying while another process holds the index lock.

    While it waits it holds a SHARED flock on ``waiting``, which tells the holder (see
    ``others_waiting``) to hand the lock over after its current commit. Raises Busy naming
    the layer once ``deadline`` (monotonic seconds) has passed.
    """
    delay = 0.002
    signal: int | None = None
    try:
        while True:
            try:
                return index.writer(heap, threads)
            except ValueError as err:
                if "LockBusy" not in str(err) and "lock" not in str(err).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise Busy(f"layer {layer!r} is being written by another process; try again") from None
                if signal is None and waiting is not None:
                    signal = _flag_waiting(waiting)
                time.sleep(delay)
                delay = min(delay * 1.5, LOCK_POLL_MAX)
    finally:
        if signal is not None:
            os.close(signal)


def _flag_waiting(waiting: Path) -> int | None:
    fd = os.open(waiting, os.O_RDWR | os.O_CREAT, 0o644)
    for _ in range(50):  # the holder's probe takes the lock for microseconds only
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            time.sleep(0.0005)
    os.close(fd)
    return None


def others_waiting(waiting: Path) -> bool:
    """True when another process is waiting for this layer's writer lock."""
    try:
        return is_held(waiting)
    except OSError:  # never let the probe stop the writer thread
        return False


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

    def delete(self, memory_id: str) -> None:
        """Queue the deletion of one id into the pending commit (applies to earlier adds too)."""
        self._writer.delete_documents_by_term(ID, memory_id)


@dataclass
class _Op:
    kind: str  # "add" | "delete" | "bulk" | "flush"
    future: Future[Any] = field(default_factory=Future)
    docs: list[tuple[str, str, datetime]] = field(default_factory=list)
    memory_id: str = ""
    job: Callable[[BulkSink], Any] | None = None
    small: bool = False  # a bulk job with the group commits' modest arena (a log flush)


class LayerWriter(GroupCommitQueue[_Op]):
    """The per-process writer of one layer (see the module docstring)."""

    def __init__(
        self,
        layer: str,
        generations: Generations,
        lock_timeout: float,
        idle_close: float = 0.3,
    ) -> None:
        super().__init__(layer, f"jamey-memory-writer-{layer}")
        self.generations = generations
        self.lock_timeout = lock_timeout
        self.idle_close = idle_close
        self.commits = 0
        self._last_batch = 0
        self._yield_until = 0.0
        self._waiting = generations.root / f".{layer}.writers-waiting"
        self._writer: Any = None
        self._writer_mode = ""
        self._generation = ""
        self._index: tantivy.Index | None = None

    # -- callers ----------------------------------------------------------------------
    def _wake(self, op: _Op) -> bool:
        # Wake the thread for the first operation and once a batch is as big as the last one;
        # in between it polls (see _coalesce), so 32 callers do not wake it 32 times.
        return len(self._queue) == 1 or len(self._queue) >= self._last_batch or op.kind != "add"

    def add(self, docs: list[tuple[str, str, datetime]]) -> Future[Any]:
        """Queue documents (id, content, timestamp); the future resolves once they are committed."""
        return self._submit(_Op("add", docs=docs))

    def delete(self, memory_id: str) -> Future[Any]:
        """Queue the deletion of one id; the future resolves once it is committed."""
        return self._submit(_Op("delete", memory_id=memory_id))

    def bulk(self, job: Callable[[BulkSink], Any], small: bool = False) -> Future[Any]:
        """Run ``job(sink)`` alone with a large writer (with ``small``, the group commits' one
        thread and modest arena) and commit once (rolled back if it raises)."""
        return self._submit(_Op("bulk", job=job, small=small))

    def flush(self) -> None:
        """Wait until everything queued before this call is committed (or failed)."""
        if self.started:
            self._submit(_Op("flush")).result()

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
            self._coalesce()
            count = next((i for i, op in enumerate(self._queue) if op.kind == "bulk"), len(self._queue))
            ops, self._queue = self._queue[:count], self._queue[count:]
            return ops

    def _coalesce(self) -> None:
        """With concurrent callers, wait a moment while the queue still grows (lock held).

        Callers released by the previous commit come back within a millisecond or so; without
        this pause they would split into two half-size commits. It stops as soon as the queue
        is as long as the last batch, or when no caller came for COALESCE_STEP. A lone caller
        (last batch of one) never waits.
        """
        if self._last_batch <= 1:
            return
        deadline = time.monotonic() + COALESCE_MAX
        seen = len(self._queue)
        while seen < min(self._last_batch, COALESCE_LIMIT):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(min(COALESCE_STEP, remaining))
            if len(self._queue) == seen:
                return
            seen = len(self._queue)

    def _idle(self) -> None:
        self._release_writer()

    def _stopped(self) -> None:
        self._release_writer()

    def _process(self, ops: list[_Op]) -> None:
        ops = self._claim(ops)
        if not ops:
            return
        bulk = ops[0].kind == "bulk"
        result: Any = None
        try:
            if all(op.kind == "flush" for op in ops):
                for op in ops:
                    op.future.set_result(None)
                return
            with self.generations.shared(f"layer {self.layer!r}"):
                writer = self._acquire("bulk" if bulk and not ops[0].small else "small")
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
                self._last_batch = len(ops)
        except BaseException as err:
            self._discard_writer()
            self._fail(ops, err)
            return
        for op in ops:
            op.future.set_result(result if bulk else None)
        if bulk:
            self._release_writer()
        elif others_waiting(self._waiting):
            self._release_writer()
            # Step aside briefly, so the process polling for the lock takes its turn.
            self._yield_until = time.monotonic() + YIELD_AFTER_HOLD

    def _acquire(self, mode: str) -> Any:
        generation = self.generations.read()[self.layer]
        if generation != self._generation or mode != self._writer_mode:
            self._release_writer()
        if self._index is None or generation != self._generation:
            self._index = open_index(self.generations.layer_path(self.layer, generation), self.layer)
            self._generation = generation
        if self._writer is None:
            time.sleep(max(0.0, self._yield_until - time.monotonic()))
            heap, threads = (BULK_HEAP, BULK_THREADS) if mode == "bulk" else (SMALL_HEAP, 1)
            deadline = time.monotonic() + self.lock_timeout
            self._writer = open_writer(self._index, heap, threads, deadline, self.layer, self._waiting)
            self._writer_mode = mode
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
