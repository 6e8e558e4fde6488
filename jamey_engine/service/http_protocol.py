"""uvicorn's httptools protocol with one socket write per small answer instead of two.

uvicorn writes an answer's status line and headers when the app sends ``http.response.start``,
and its body when the app sends ``http.response.body``: two ``send`` calls on the socket for
every answer. On loopback each one also delivers the segment to the reader and wakes it, which
the profile of a keyed store put among uvicorn's ~90 µs per request (docs/benchmarks.md).

:class:`CoalescingProtocol` hands the protocol (and so every request cycle) a transport that
gathers what is written during one step of the event loop and writes it at the end of that
step (``loop.call_soon``): the head and body of an answer sent without a pause go out in one
call. Order is kept, nothing waits for a later event (the write happens before the loop
polls for I/O again), a close, an ``eof`` or a large write flushes first, and what is gathered
never exceeds ``DIRECT_BYTES`` (many small writes in one step are sent as they reach it).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# A write at least this large goes out at once (after what was gathered): joining it would copy it.
DIRECT_BYTES = 64 * 1024


class CoalescingTransport:
    """A transport that joins the writes of one event-loop step into one (see the module)."""

    __slots__ = ("_loop", "_pending", "_pending_bytes", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        size = len(data)
        if size >= DIRECT_BYTES:
            self.flush()
            self._transport.write(data)
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))
        self._pending_bytes += size
        if self._pending_bytes >= DIRECT_BYTES:  # many small writes in one step: no unbounded buffer
            self.flush()

    def flush(self) -> None:
        """Write what was gathered (a no-op when nothing was, or the transport is closing)."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        self._pending_bytes = 0
        if not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._pending_bytes + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:  # is_closing, abort, get_extra_info, pause_reading...
        return getattr(self._transport, name)


class CoalescingProtocol(HttpToolsProtocol):
    """HttpToolsProtocol whose writes go through a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport instances, but have its methods.
        coalescing = CoalescingTransport(cast(asyncio.Transport, transport), self.loop)
        super().connection_made(cast(asyncio.Transport, coalescing))
