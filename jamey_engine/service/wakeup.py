"""Await thread-pool futures from the event loop with one wake-up per batch of completions.

``asyncio.wrap_future`` wakes the loop once per future (``call_soon_threadsafe``: a write to the
loop's self-pipe, which drops the GIL). A group commit completes 32 stores' futures at once, so
the writer thread would wake the loop 32 times, and each wake-up can make the loop wait for the
GIL again. ``Completions`` gathers the results that arrive while a wake-up is pending and hands
them all over in that one wake-up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from typing import Any, TypeVar

T = TypeVar("T")


class Completions:
    """The bridge of one event loop; build it on the loop (``for_running_loop``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._ready: list[tuple[asyncio.Future[Any], concurrent.futures.Future[Any]]] = []
        self.wakeups = 0

    def wait(self, future: concurrent.futures.Future[T]) -> asyncio.Future[T]:
        """An asyncio future with ``future``'s outcome. Cancelling it cancels ``future`` (which
        a writer then skips if it has not started on it)."""
        waiter: asyncio.Future[T] = self.loop.create_future()

        def done(finished: concurrent.futures.Future[T]) -> None:
            with self._lock:
                self._ready.append((waiter, finished))
                if len(self._ready) > 1:
                    return  # a wake-up is already on its way and will take this one too
            self.wakeups += 1
            if not self.loop.is_closed():  # a loop gone at shutdown has no one left to wake
                self.loop.call_soon_threadsafe(self._settle)

        def given_up(settled: asyncio.Future[T]) -> None:
            if settled.cancelled():
                future.cancel()

        waiter.add_done_callback(given_up)
        future.add_done_callback(done)
        return waiter

    def _settle(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for waiter, finished in ready:
            if waiter.done():
                continue
            if finished.cancelled():
                waiter.cancel()
            elif (error := finished.exception()) is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(finished.result())


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Completions] = weakref.WeakKeyDictionary()


def completion_of(future: concurrent.futures.Future[T]) -> asyncio.Future[T]:
    """Await ``future`` on the running loop through that loop's ``Completions``."""
    loop = asyncio.get_running_loop()
    bridge = _BY_LOOP.get(loop)
    if bridge is None:
        bridge = _BY_LOOP[loop] = Completions(loop)
    return bridge.wait(future)
