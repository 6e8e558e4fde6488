"""The processes' log handler, and the access log's way around building a LogRecord per request.

Every request the service answers logs one access-log line (``service/middleware.py``).
Through ``logging`` that line cost a LogRecord (the caller's frame looked up, the thread and
process named), a formatter pass, and one ``write`` system call on the event loop's thread,
which also lets go of the GIL and must win it back from the log's writer thread: 10.7 µs a line
on the development VM, about a tenth of a store's time inside the app (docs/benchmarks.md).

- ``setup_logging`` installs :class:`StepBufferedHandler` on the root logger with ``FORMAT``,
  and turns off the record fields ``FORMAT`` never shows (the logging HOWTO's "Optimization").
- ``direct_sink`` tells the middleware when a record would reach that one handler, unfiltered:
  then the middleware formats the line itself (what the record would write, byte for byte) and
  hands it to ``StepBufferedHandler.line``, which on a running loop gathers the lines of one loop
  step and writes them at the end of the step (``loop.call_soon``, as ``service/http_protocol.py``
  gathers an answer's writes): the same lines, in the same order, in one call.
- Every other record is written at once, after the lines gathered before it (the order across
  threads is kept, and a server's last words are never held: uvicorn ends by raising the signal
  it caught again, so no exit handler runs). ``flush`` (``logging.shutdown`` at exit) writes what
  is gathered. Lost on a SIGKILL: at most the access lines of the loop step that was running.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from contextlib import suppress
from typing import TextIO

FORMAT = "%(levelname)s %(name)s: %(message)s"


class StepBufferedHandler(logging.StreamHandler):
    """A ``StreamHandler`` that also takes ready-made lines, gathered per event-loop step (see the module)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop a flush is scheduled on

    def emit(self, record: logging.LogRecord) -> None:
        # Called by Handler.handle with this handler's lock held. A record is written at once,
        # after the lines gathered before it: a server's last words before it stops (uvicorn
        # ends by raising the signal it caught again, so no exit handler runs) are never held.
        self._write_pending()
        super().emit(record)

    def line(self, name: str, level: int, message: str) -> None:
        """Write what a record of logger ``name`` at ``level`` with ``message`` would write under
        ``FORMAT``, without the record: on a running event loop at the end of the loop's step,
        with the step's other lines; else at once. For a caller that ``direct_sink`` found this
        handler for (so that a LogRecord would change nothing)."""
        text = f"{logging.getLevelName(level)} {name}: {message}{self.terminator}"
        self.acquire()
        try:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._write_pending()
                self._write(text)
                return
            self._gather(text, loop)
        finally:
            self.release()

    def _gather(self, line: str, loop: asyncio.AbstractEventLoop) -> None:
        if self._pending and self._loop is not loop:
            self._write_pending()  # gathered on a loop that is gone or another thread's: out now
        if not self._pending:
            self._loop = loop
            loop.call_soon(self.flush)
        self._pending.append(line)

    def flush(self) -> None:
        self.acquire()
        try:
            self._write_pending()
            super().flush()
        finally:
            self.release()

    def _write_pending(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            self._write("".join(pending))

    def _write(self, text: str) -> None:
        if self.stream is not None:
            # A closed or broken stderr must not break the caller (StreamHandler reports and goes on).
            with suppress(OSError, ValueError):
                self.stream.write(text)
                self.stream.flush()


def direct_sink(logger: logging.Logger, level: int) -> StepBufferedHandler | None:
    """The one handler a record of ``logger`` at ``level`` would reach, when it is a
    :class:`StepBufferedHandler` formatting with ``FORMAT`` and nothing on the way filters:
    then its ``line`` writes exactly what the record would have written. None in any other set-up (a test's capture handler, an embedding
    program's own handlers or filters): log the record then. Check ``isEnabledFor`` first."""
    found: StepBufferedHandler | None = None
    node: logging.Logger | None = logger
    while node is not None:
        if node.filters:
            return None
        for handler in node.handlers:
            if (
                found is not None
                or type(handler) is not StepBufferedHandler
                or handler.filters
                or level < handler.level
                or handler.formatter is None
                or handler.formatter._fmt != FORMAT
            ):
                return None
            found = handler
        node = node.parent if node.propagate else None
    return found


def setup_logging(level: str | int) -> None:
    """The root logger at ``level`` writing ``FORMAT`` lines to stderr through a
    :class:`StepBufferedHandler`; a no-op when the root logger already has a handler (as
    ``logging.basicConfig``: a test's capture, an embedding program's own set-up).

    ``FORMAT`` names no source line, thread or process, so a record need not find them: the
    logging HOWTO's "Optimization" switches turn that off (the caller's frame walk is the
    costliest of the three).
    """
    if logging.root.handlers:
        return
    logging.basicConfig(
        level=level.upper() if isinstance(level, str) else level,
        format=FORMAT,
        handlers=[StepBufferedHandler(sys.stderr)],
    )
    logging._srcfile = None  # no findCaller() per record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
