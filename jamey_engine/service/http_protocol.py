"""uvicorn's httptools protocol with one socket write per small answer instead of two, and the
service's hot requests answered whole, without an ASGI cycle (``ServiceProtocol``, below).

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
import time
from typing import TYPE_CHECKING, Any, cast

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

if TYPE_CHECKING:
    from starlette.responses import Response

    from jamey_engine.service.fastpath import FastPath

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


class ServiceProtocol(CoalescingProtocol):
    """CoalescingProtocol that hands the service's hot requests to its fast path whole.

    uvicorn runs every request as an ASGI cycle: a task driving the app through ``receive`` and
    ``send`` messages, the service's middleware wrapping both, and ``send`` checking each
    header against two patterns. For the requests ``FastPath.takes_whole`` takes (a keyed search
    or store whose framing bounds its body, without ``Expect: 100-continue``), this protocol's
    task instead waits for the whole body, asks ``FastPath.answer`` for the Response, and writes
    the status line, headers and body in one call: uvicorn's default headers (``date``), the
    Response's, then the middleware's (``answer_headers``), as the ASGI path orders them. The
    middleware's ``record`` counts, times and logs it. A request the fast path leaves to the app
    (``answer`` gives None) runs as uvicorn's cycle, its body unread by the app yet.

    Everything else stays uvicorn's: parsing, keep-alive and its timeout, pipelining (the next
    request waits until this answer is written), flow control, graceful shutdown (the task is in
    ``server_state.tasks``; a shut-down connection closes after its answer). Served by another
    app (not the service's own ``ServiceApp``), it is a ``CoalescingProtocol``.
    """

    lane: FastPath | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        fast = getattr(self.app, "fast_path", None)  # the service's app itself, never a wrapper's
        if fast is not None and not self.config.reset_contextvars:
            self.lane = fast

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        lane = self.lane
        if (
            lane is None
            or app is not self.app
            or cycle.waiting_for_100_continue
            or not lane.takes_whole(cast(dict[str, Any], cycle.scope))
        ):
            super()._start_asgi_task(cycle, app)
            return
        task = self.loop.create_task(self._answer_whole(cycle, lane))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _answer_whole(self, cycle: RequestResponseCycle, lane: FastPath) -> None:
        started = time.perf_counter()
        scope = cast(dict[str, Any], cycle.scope)
        try:
            while cycle.more_body and not cycle.disconnected:  # the rest of a bounded body
                self.flow.resume_reading()
                await cycle.message_event.wait()
                cycle.message_event.clear()
            if cycle.disconnected:
                return
            response = await lane.answer(scope, bytes(cycle.body))
            if response is None:
                cycle.message_event.set()  # the app's first receive gets the body at once
                await cycle.run_asgi(self.app)
                return
            await self._write_whole(cycle, response, lane.middleware.answer_headers(scope))
            lane.middleware.record(scope, response.status_code, time.perf_counter() - started)
        except BaseException as exc:  # as uvicorn's cycle answers an app's failure
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            if not cycle.response_started:
                await cycle.send_500_response()
            else:
                self.transport.close()
        finally:
            cycle.on_response = lambda: None

    async def _write_whole(
        self, cycle: RequestResponseCycle, response: Response, extra: list[tuple[bytes, bytes]]
    ) -> None:
        """Write ``response`` (whole, with ``extra`` headers) as uvicorn's ``send`` would, in one call."""
        if cycle.flow.write_paused and not cycle.disconnected:
            await cycle.flow.drain()
        if cycle.disconnected:
            return
        parts = [STATUS_LINE[response.status_code]]
        closes = False
        for name, value in (*cycle.default_headers, *response.raw_headers, *extra):
            if name == b"connection" and b"close" in [token.strip().lower() for token in value.split(b",")]:
                cycle.keep_alive = False
                closes = True
            parts += (name, b": ", value, b"\r\n")
        if not cycle.keep_alive and not closes:
            parts.append(b"connection: close\r\n")
        parts += (b"\r\n", bytes(response.body))
        cycle.response_started = cycle.response_complete = True
        # Gathered to the end of the loop's step like every other write: sent at once, each answer
        # woke the client before the step's other answers were written, and searches went 15%
        # slower (interleaved, docs/benchmarks.md).
        self.transport.write(b"".join(parts))
        cycle.message_event.set()
        if not cycle.keep_alive:
            self.transport.close()
        cycle.on_response()
