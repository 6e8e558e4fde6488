"""Helpers shared by the tests: the servers' URLs, settings on a data dir, free ports and readiness waits."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from jamey_engine.config import Settings
from jamey_engine.db import Database
from jamey_engine.memory import MemoryStore
from jamey_engine.memory.schema import to_memory

POSTGRES_URL = os.environ.get("JAMEY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("JAMEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MQTT_URL = os.environ.get("JAMEY_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
# Debian's Chromium, headless; never a downloaded browser.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def make_settings(data_dir: Path, **env: str) -> Settings:
    """Settings for a test: only what the test passes, on top of the defaults, in ``data_dir``
    (and /metrics read at every scrape, JAMEY_METRICS_CACHE_SECONDS=0, unless given)."""
    return Settings.from_env({"JAMEY_DATA_DIR": str(data_dir), "JAMEY_METRICS_CACHE_SECONDS": "0", **env})


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 20.0) -> None:
    """Block until something accepts connections on host:port, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout}s")


def wait_until(
    predicate: Callable[[], Any], timeout: float = 30.0, message: str = "condition", *, every: float = 0.05
) -> Any:
    """Call ``predicate`` until it returns something truthy, and return that value.

    Fails with AssertionError naming ``message`` (and the last value) once ``timeout`` seconds
    pass: the one poll with a deadline that tests share, so none waits forever.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {value!r})")
        time.sleep(every)


def sleep_until(moment: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``moment`` (at once if it has passed).

    Tests of a time bound sleep past the latest instant the bound allows and then check once:
    a loaded machine can only make the check later, never make it fail.
    """
    while (left := moment - time.monotonic()) > 0:
        time.sleep(left)


def memories_on_disk(store: MemoryStore, layer: str) -> list[Any]:
    """Every memory of ``layer`` after flushing every process's write-ahead log into the index."""
    import tantivy

    store.flush()
    searcher = store.index(layer).searcher()
    hits = searcher.search(tantivy.Query.all_query(), max(int(searcher.num_docs), 1), count=False).hits
    return [to_memory(searcher.doc(address), layer) for _, address in hits]


def copies_of_each_id(store: MemoryStore, layer: str) -> Counter[str]:
    """How many documents of ``layer``'s index carry each id (1 for each, after a good replay)."""
    return Counter(memory.id for memory in memories_on_disk(store, layer))


def is_revoked(database: Database, key_id: str) -> bool:
    """Whether the key's revocation is committed, as another connection to its database sees it."""
    with database.engine.connect() as conn:
        revoked_at = conn.execute(
            sa.text("SELECT revoked_at FROM api_keys WHERE id = :id"), {"id": key_id}
        ).scalar_one()
    return revoked_at is not None


@contextmanager
def threads_started_by_this_thread() -> Iterator[list[threading.Thread]]:
    """Record every thread (Timers included) that the calling thread starts inside the block.

    Threads that other threads start meanwhile (a fixture's server, a background flush) are
    not counted, so the record shows only what the code under test did.
    """
    caller = threading.current_thread()
    started: list[threading.Thread] = []
    original = threading.Thread.start

    def recording_start(thread: threading.Thread) -> None:
        if threading.current_thread() is caller:
            started.append(thread)
        original(thread)

    threading.Thread.start = recording_start  # type: ignore[method-assign]
    try:
        yield started
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]
