"""The data dir's flusher: the one process that moves the write-ahead logs into the index.

Under ``jamey serve`` the serving processes only append (each to its own segment stream),
answer and search; ``jamey flusher`` (started and restarted by ``jamey serve``) flushes every
layer's log into the on-disk index: at most ``flush_interval`` after a record is appended
(sooner when the log was idle, or when a writer holding ``flush_docs`` memories asks through
``wal.flush-wanted``), so another process sees a write within ``JAMEY_FLUSH_INTERVAL`` plus
one commit, as documented.

Exactly one flusher is active per data dir: it holds an exclusive flock on
``memory/flusher.lease`` (the file names the holder's pid) for as long as it runs. A second
flusher waits for the lease and takes over when the first dies: the kernel drops the flock of
a dead process, so no stale lease can outlive it. Two flushers would still be safe (each flush
holds the layer's flush lock), only wasteful.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from jamey_engine.errors import JameyError
from jamey_engine.fsutil import try_lease
from jamey_engine.memory.layers import LAYERS
from jamey_engine.memory.store import MemoryStore
from jamey_engine.observability.logsink import setup_logging

if TYPE_CHECKING:
    from jamey_engine.config import Settings

log = logging.getLogger("jamey_engine.memory")

LEASE = "flusher.lease"
POLL_SECONDS = 0.05  # how often an idle flusher looks for new segments and early-flush requests
LEASE_POLL_SECONDS = 0.2  # how soon a waiting flusher takes over from a dead one


class FlusherLease:
    """The flock that makes one flusher active per data dir (see the module docstring)."""

    def __init__(self, memory_dir: Path) -> None:
        self.path = Path(memory_dir) / LEASE
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lease if it is free; True if this process holds it now."""
        if self._fd is not None:
            return True
        self._fd = try_lease(self.path)
        return self._fd is not None

    def acquire(self, keep_waiting: Callable[[], bool]) -> bool:
        """Wait for the lease while ``keep_waiting()``; True once held."""
        announced = False
        while keep_waiting():
            if self.try_acquire():
                return True
            if not announced:
                log.info(
                    "another flusher (pid %s) holds %s; waiting to take over",
                    holder(self.path.parent),
                    self.path,
                )
                announced = True
            time.sleep(LEASE_POLL_SECONDS)
        return False

    def release(self) -> None:
        """Give the lease up (closing the file drops the flock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def holder(memory_dir: Path) -> int | None:
    """The pid written by the last flusher to take the lease of ``memory_dir`` (None if none).
    The lease is held only while that process lives."""
    try:
        text = (Path(memory_dir) / LEASE).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class Flusher:
    """Flushes every layer of ``store`` that has log segments, on the schedule in the module doc."""

    def __init__(self, store: MemoryStore, interval: float) -> None:
        self.store = store
        self.interval = interval
        self.flushes = 0
        self.failures = 0
        self._last: dict[str, float] = dict.fromkeys(LAYERS, 0.0)

    def due(self, layer: str, now: float) -> bool:
        """Does ``layer`` need a flush now (segments present, and its interval over or an early
        flush asked for)?"""
        wal = self.store.layer_log(layer)
        if not wal.segments():
            return False
        return now - self._last[layer] >= self.interval or wal.flush_wanted()

    def flush_due(self) -> None:
        """One pass over the layers: flush each that is due (errors are logged and counted)."""
        for layer in LAYERS:
            now = time.monotonic()
            if not self.due(layer, now):
                continue
            self._last[layer] = now  # the interval runs from a flush's start: the bound holds
            try:
                if self.store.flush_layer(layer):
                    self.flushes += 1
            except JameyError as err:
                self.failures += 1
                log.warning("layer %s: flushing the write-ahead log failed (%s)", layer, err)

    def run(self, stop: threading.Event, parent: int | None = None) -> None:
        """Flush until ``stop`` is set (or the ``parent`` process is gone), then flush once more."""
        poll = min(POLL_SECONDS, self.interval)
        while not stop.is_set():
            if parent is not None and os.getppid() != parent:
                log.warning("the flusher's parent (pid %d) is gone; flushing once more and stopping", parent)
                break
            self.flush_due()
            stop.wait(poll)
        for layer in LAYERS:
            try:
                self.store.flush_layer(layer)
            except JameyError as err:
                log.warning("layer %s: the last flush failed; the log keeps the records (%s)", layer, err)


def run(settings: Settings, parent: int | None = None) -> None:
    """Be the data dir's flusher until SIGTERM or SIGINT (or ``parent`` is gone): wait for the
    lease, then flush on the schedule above, and flush once more before returning."""
    stop = threading.Event()

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    lease = FlusherLease(settings.memory_dir)
    if not lease.acquire(lambda: not stop.is_set() and (parent is None or os.getppid() == parent)):
        return
    store = MemoryStore(
        settings.memory_dir,
        max_content_bytes=settings.max_content_bytes,
        lock_timeout=settings.lock_timeout,
        flush_interval=settings.flush_interval,
        flush_docs=settings.flush_docs,
        flusher="inline",
    )
    log.info("flushing the write-ahead logs of %s every %gs", settings.memory_dir, settings.flush_interval)
    try:
        Flusher(store, settings.flush_interval).run(stop, parent)
    finally:
        store.close()
        lease.release()


def main(argv: list[str]) -> int:
    """``python -m jamey_engine.memory.flusher [--parent PID]``: what ``jamey serve`` starts (the
    same as ``jamey flusher``, without importing the whole CLI: a quicker start)."""
    from jamey_engine.config import Settings
    from jamey_engine.errors import JameyError
    from jamey_engine.privacy import set_private_umask

    set_private_umask()
    try:
        settings = Settings.from_env()
    except JameyError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    parent = int(argv[1]) if len(argv) == 2 and argv[0] == "--parent" and argv[1].isdigit() else None
    run(settings, parent)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
