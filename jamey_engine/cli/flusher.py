"""``jamey flusher``: the data dir's one write-ahead-log flusher (memory/flusher.py).

``jamey serve`` starts it and restarts it when it dies (serving processes then never index);
run it yourself only when you serve some other way with JAMEY_FLUSHER=process.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

from jamey_engine.cli.common import get_engine
from jamey_engine.memory.flusher import Flusher, FlusherLease
from jamey_engine.memory.store import MemoryStore

log = logging.getLogger(__name__)


@click.command("flusher")
@click.option(
    "--parent", type=int, default=None, hidden=True, help="Stop when this process (jamey serve) is gone."
)
def group(parent: int | None) -> None:
    """Flush the memory layers' write-ahead logs into the index until interrupted (one per data dir)."""
    settings = get_engine().settings
    stop = threading.Event()

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    lease = FlusherLease(settings.memory_dir)
    if not lease.acquire(lambda: not stop.is_set()):
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
