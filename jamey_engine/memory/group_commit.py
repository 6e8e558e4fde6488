"""One group-commit queue: callers queue operations and wait on futures; one thread per queue
takes what is queued and settles the whole group at once.

Two serve a layer's write path in each process, and both are this class:

- ``memory/log_writer.py``'s ``LogWriter`` appends a group to the layer's write-ahead log in one
  write and one fdatasync, then resolves its futures (the durable step of a store);
- ``memory/writer.py``'s ``LayerWriter`` indexes a group into tantivy and commits once (the
  flush, imports, and stores without the log).

The queue owns what they share: the lazily started thread, the refusal once closed, the wake-up
of an idle thread, the stop that drains what is queued, the skipping of futures a caller
cancelled, and the failure of a whole group with the error that stopped it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any, Generic, Protocol, TypeVar

from jamey_engine.errors import JameyError


class Queued(Protocol):
    """An operation waiting in a queue: the future its caller waits on."""

    @property
    def future(self) -> Future[Any]: ...


OpT = TypeVar("OpT", bound=Queued)


class GroupCommitQueue(Generic[OpT]):
    """A queue of operations and the one thread that commits them in groups (see the module).

    A subclass implements ``_process(ops)`` (one group: claim, do the work, settle), and may
    override ``_wake`` (when a submit notifies the thread), ``_take`` (how a group is gathered;
    ``[]`` means "idle"), ``_idle`` and ``_stopped``.
    """

    def __init__(self, layer: str, thread_name: str) -> None:
        self.layer = layer
        self._thread_name = thread_name
        self._queue: list[OpT] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- callers ----------------------------------------------------------------------
    def _submit(self, op: OpT) -> Future[Any]:
        """Queue ``op`` (starting the thread on first use); JameyError once the queue is closed."""
        with self._cond:
            if self._stopping:
                raise JameyError(f"layer {self.layer!r}: the memory store is closed")
            self._queue.append(op)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
                self._thread.start()
            if self._wake(op):
                self._cond.notify()
        return op.future

    def _wake(self, op: OpT) -> bool:
        """Whether queuing ``op`` wakes the thread (the lock held): the first of a group does;
        the thread takes everything queued when it comes back."""
        return len(self._queue) == 1

    @property
    def started(self) -> bool:
        """True once an operation was submitted (the thread runs until ``close``)."""
        return self._thread is not None

    def close(self) -> None:
        """Commit what is queued and stop the thread (later submits are refused). Idempotent."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    # -- the thread ---------------------------------------------------------------------
    def _take(self) -> list[OpT] | None:
        """The next group: everything queued; None once closed and empty."""
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if not self._queue:
                return None
            ops, self._queue = self._queue, []
            return ops

    def _run(self) -> None:
        while True:
            ops = self._take()
            if ops is None:
                break
            if ops:
                self._process(ops)
            else:
                self._idle()
        self._stopped()

    def _process(self, ops: list[OpT]) -> None:
        raise NotImplementedError

    def _idle(self) -> None:
        """Called when ``_take`` returned an empty group (an idle spell)."""

    def _stopped(self) -> None:
        """Called once, on the thread, after the last group."""

    @staticmethod
    def _claim(ops: Iterable[OpT]) -> list[OpT]:
        """The operations whose callers still wait, marked running. A caller may have given up on
        its future (an event loop cancels the future it awaits when its request is cancelled):
        those are skipped, and a late cancel() can no longer make set_result fail."""
        return [op for op in ops if op.future.set_running_or_notify_cancel()]

    @staticmethod
    def _fail(ops: Iterable[OpT], err: BaseException) -> None:
        """Fail every operation of a group still waiting with the error that stopped it; an error
        that is not an Exception (KeyboardInterrupt, SystemExit) goes on up the thread."""
        for op in ops:
            if not op.future.done():
                op.future.set_exception(err)
        if not isinstance(err, Exception):
            raise err
