"""Per-stage timestamps of the fast path's durable store, in a bench server (issue 31's tail).

Installed by ``bench.bench_service:bench_app`` when ``JAMEY_BENCH_STAGES=1``; never in the
service. Each ``POST /memories`` answered by the fast path records, on one clock
(``time.perf_counter``): entry into the handler, key checked, body read, memory queued to the
log's group commit, durable (the writer thread resolves its future), resumed on the event loop,
answer sent. Beside them: each log group (taken, appended and fdatasynced, its size), each
garbage collection (start, end, generation) and each event-loop lag over 2 ms (a 5 ms timer
that woke late). ``GET /bench/stages`` answers all of it since the last call and starts over;
``bench/bench_tail.py`` reads it under wrk and says where the slowest stores spent their time.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from starlette.types import Receive, Scope, Send

LAG_TICK = 0.005
LAG_KEPT = 0.002


class StageTrace:
    def __init__(self) -> None:
        self.reset()
        self._gc_started = 0.0
        self._ticker: asyncio.Task[None] | None = None

    def reset(self) -> None:
        self.requests: list[tuple[float, ...]] = []
        self.groups: list[tuple[float, float, int]] = []
        self.gcs: list[tuple[float, float, int]] = []
        self.lags: list[tuple[float, float]] = []

    def report(self) -> dict[str, Any]:
        data = {"requests": self.requests, "groups": self.groups, "gcs": self.gcs, "lags": self.lags}
        self.reset()
        return data

    def install(self) -> None:
        """Wrap the fast path's store and the log writer's group; time GC (before the app is built)."""
        from jamey_engine.memory.log_writer import LogWriter
        from jamey_engine.service import fastpath
        from jamey_engine.service.routes_memory import _json

        trace = self
        original_process = LogWriter._process

        def process(writer: LogWriter, ops: list[Any]) -> None:
            taken = time.perf_counter()
            original_process(writer, ops)
            trace.groups.append((taken, time.perf_counter(), len(ops)))

        LogWriter._process = process  # type: ignore[method-assign,assignment]

        async def store(self: fastpath.FastPath, scope: Scope, receive: Receive, send: Send) -> None:
            entered = time.perf_counter()
            trace._tick()
            if fastpath._content_type(scope) not in fastpath.JSON_TYPES:
                await self._fallback(scope, receive, send)
                return
            request = fastpath.Request(scope, receive)
            await self.app.state.authenticator.authenticate(request, "memory:write")
            checked = time.perf_counter()
            body = await fastpath._read_body(receive)
            read = time.perf_counter()
            fields = fastpath._store_fields(body, self.engine.settings.max_content_bytes)
            if fields is None:
                await self._fallback(scope, fastpath._replay(body, receive), send)
                return
            self._stores.inc()
            # As store_one stores: an asyncio future the log's thread resolves per group.
            loop = asyncio.get_running_loop()
            stored, committed = self.engine.memory.store_nowait(fields[0], fields[1], None, loop)
            queued = time.perf_counter()
            assert isinstance(committed, asyncio.Future)  # the log is on in every benchmark
            await committed
            resumed = time.perf_counter()
            # Durable when the first group that ended after the store was queued ended.
            ends = [end for _, end, _ in trace.groups[-64:] if end >= queued]
            durable = [min(ends) if ends else resumed]
            await _json({"id": stored.id}, 201)(scope, receive, send)
            sent = time.perf_counter()
            trace.requests.append((entered, checked, read, queued, durable[0], resumed, sent))

        fastpath.FastPath._store = store  # type: ignore[method-assign]
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gcs.append((self._gc_started, time.perf_counter(), info["generation"]))

    def _tick(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._lag())

    async def _lag(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(LAG_TICK)
            late = time.perf_counter() - before - LAG_TICK
            if late > LAG_KEPT:
                self.lags.append((before + LAG_TICK, late))


STAGE_TRACE = StageTrace()
