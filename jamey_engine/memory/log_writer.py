"""The group-commit thread that appends to a layer's write-ahead log.

``LogWriter`` is the write path: callers queue records and wait on a future; one thread per
layer and process takes everything queued, appends it in one write and one fdatasync (group
commit), puts the memories into the layer's in-memory tier (``memory/tier.py``), then resolves
the futures. So a caller returns only once its memory is durable and visible to its own process.
The queue itself is ``memory/group_commit.py``'s, shared with the index writer.

A caller on an event loop (a store over HTTP) waits on an asyncio future instead
(``add_waiting``): the thread resolves all of one group's on the loop in one wake-up
(``call_soon_threadsafe``), with no ``concurrent.futures.Future`` per store, its lock, and the
callback each one would run on the thread while holding the GIL the loop needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import suppress

from jamey_engine.memory.group_commit import GroupCommitQueue
from jamey_engine.memory.tier import Tier
from jamey_engine.memory.wal import Doc, LayerLog, encode_add, encode_delete


class _Op:
    """One queued append: its record bytes, what to apply once durable, and who waits: a
    ``future`` (a thread), or a ``waiter`` on ``loop`` (``add_waiting``)."""

    __slots__ = ("apply", "data", "future", "loop", "waiter")

    def __init__(
        self,
        data: bytes,
        apply: Callable[[int], None],
        waiter: asyncio.Future[None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.data = data
        self.apply = apply
        self.waiter = waiter
        self.loop = loop
        self.future: Future[None] = Future() if waiter is None else _NO_FUTURE

    def claim(self) -> bool:
        """Still wanted? (False when its caller gave up: a cancelled request is not written.)"""
        if self.waiter is not None:
            return not self.waiter.cancelled()
        return self.future.set_running_or_notify_cancel()


_NO_FUTURE: Future[None] = Future()  # the future of every op that has a waiter instead (never used)


def _resolve(waiters: list[asyncio.Future[None]], err: BaseException | None) -> None:
    """On the loop: settle the waiters of one group (those whose caller has not given up)."""
    for waiter in waiters:
        if not waiter.done():
            if err is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(err)


class LogWriter(GroupCommitQueue[_Op]):
    """One layer's group-commit appender in this process (see the module docstring)."""

    def __init__(self, wal: LayerLog, tier: Tier, on_written: Callable[[], None]) -> None:
        super().__init__(wal.layer, f"jamey-memory-log-{wal.layer}")
        self.wal = wal
        self.tier = tier
        self.on_written = on_written
        self.appends = 0

    def add(self, docs: list[Doc], added: int) -> Future[None]:
        """Log ``docs``; the future resolves once they are durable and in the tier."""

        def apply(seq: int) -> None:
            self.tier.add(seq, docs, added)

        return self._submit(_Op(encode_add(docs), apply))

    def add_waiting(
        self, docs: list[Doc], added: int, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[None]:
        """``add`` for a caller on ``loop`` (its running loop): an asyncio future, resolved on
        the loop once ``docs`` are durable and in the tier. Cancelling it before the group is
        taken leaves ``docs`` unwritten."""
        waiter: asyncio.Future[None] = loop.create_future()
        tier = self.tier

        def apply(seq: int) -> None:
            tier.add(seq, docs, added)

        self._submit(_Op(encode_add(docs), apply, waiter, loop))
        return waiter

    def delete(self, memory_id: str, on_disk: bool) -> Future[None]:
        """Log the deletion of ``memory_id``; the future resolves once it is durable and applied."""

        def apply(seq: int) -> None:
            self.tier.delete(seq, memory_id, on_disk)

        return self._submit(_Op(encode_delete(memory_id), apply))

    def drain(self) -> None:
        """Wait until everything queued before this call is appended (or failed)."""
        if self.started:
            self._submit(_Op(b"", lambda seq: None)).result()

    def _process(self, ops: list[_Op]) -> None:
        ops = [op for op in ops if op.claim()]
        if not ops:
            return
        data = b"".join(op.data for op in ops)
        try:
            seq = self.wal.append(data) if data else 0
            if data:
                self.appends += 1
                with self.tier.lock:
                    for op in ops:
                        op.apply(seq)
        except BaseException as err:
            self._settle(ops, err)
            if not isinstance(err, Exception):
                raise  # KeyboardInterrupt, SystemExit: on up the thread, as GroupCommitQueue._fail
            return
        self._settle(ops, None)
        if data:
            self.on_written()

    @staticmethod
    def _settle(ops: list[_Op], err: BaseException | None) -> None:
        """Resolve (or fail with ``err``) every op of a group: futures here, waiters in one
        wake-up per event loop."""
        waiting: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for op in ops:
            if op.waiter is not None and op.loop is not None:
                waiting.setdefault(op.loop, []).append(op.waiter)
            elif err is None:
                op.future.set_result(None)
            elif not op.future.done():
                op.future.set_exception(err)
        for loop, waiters in waiting.items():
            with suppress(RuntimeError):  # the loop closed meanwhile: nobody is left waiting
                loop.call_soon_threadsafe(_resolve, waiters, err)
