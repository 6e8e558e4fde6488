"""Helpers shared by the tests: the servers' URLs, settings on a data dir, free ports and readiness waits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

from jamey_engine.config import Settings
from jamey_engine.db import Database
from jamey_engine.memory import MemoryStore
from jamey_engine.memory.schema import to_memory

REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("JAMEY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _redis_url() -> str:
    """JAMEY_TEST_REDIS_URL, else the local Redis with a database of this pytest-xdist worker's
    own (gw0 db 0, gw1 db 1, ... modulo Redis' 16), so workers' services never share a
    counter, a global one included."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    database = int(worker[2:]) % 16 if worker[2:].isdigit() else 0
    return os.environ.get("JAMEY_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{database}")


REDIS_URL = _redis_url()
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


# Bound, never listening, open until this test process exits (see closed_port).
_CLOSED_SOCKETS: list[socket.socket] = []


def closed_port() -> int:
    """A loopback port that refuses every connection while this test process lives.

    A socket of this process holds the port bound without listening (and without
    SO_REUSEADDR), so no other process, such as another pytest-xdist worker's server, can
    listen there: a URL on it is unreachable for sure, unlike a port ``free_port`` gave back.
    """
    if not _CLOSED_SOCKETS:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        _CLOSED_SOCKETS.append(sock)
    return int(_CLOSED_SOCKETS[0].getsockname()[1])


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` or one of its descendants listens on TCP ``port``."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    for process in processes:
        try:
            connections = process.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections):
            return True
    return False


def wait_for_own_port(process: subprocess.Popen[bytes], port: int, timeout: float = 20.0) -> bool:
    """Block until ``process`` itself (or a child of it) listens on ``port``: True.

    False when the process exits first, as a server does when another process (another test
    worker's server) bound the port between ``free_port`` and its own bind; a connection test
    alone would then reach the other server. Raises TimeoutError after ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if listens_on(process.pid, port):
            return True
        time.sleep(0.05)
    raise TimeoutError(f"process {process.pid} did not listen on 127.0.0.1:{port} within {timeout}s")


def wait_until_listening(process: subprocess.Popen[bytes], port: int, timeout: float = 20.0) -> None:
    """``wait_for_own_port``, failing the test when the process exited before it listened
    (its port was taken: better a clear failure than requests to another worker's server)."""
    if not wait_for_own_port(process, port, timeout):
        raise AssertionError(
            f"process {process.pid} exited with {process.returncode} before it listened on 127.0.0.1:{port}"
        )


def start_on_free_port(
    launch: Callable[[int], subprocess.Popen[bytes]], timeout: float = 20.0, attempts: int = 3
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server with ``launch(port)`` on a free loopback port; return it and the port
    once it listens there itself.

    A server that exits before it listens (the port was taken meanwhile) is started again on
    a fresh port, ``attempts`` times in all. Raises TimeoutError (the process stopped) when it
    never listens; the caller shows the server's log.
    """
    for _ in range(attempts):
        port = free_port()
        process = launch(port)
        try:
            if wait_for_own_port(process, port, timeout):
                return process, port
        except TimeoutError:
            stop_process(process)
            raise
    raise TimeoutError(
        f"the server exited {attempts} times before it listened (exit code {process.returncode})"
    )


def start_streamlit(
    env: dict[str, str], log_path: Path, timeout: float = 60.0, script: str = "app.py"
) -> tuple[subprocess.Popen[bytes], int]:
    """`streamlit run <script>` (the workbench) with ``env`` on a free loopback port, logging to
    ``log_path``; returns the process and its port once it listens (TimeoutError otherwise)."""
    import sys

    def launch(port: int) -> subprocess.Popen[bytes]:
        with log_path.open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port),
                 "--server.address", "127.0.0.1", "--server.headless", "true",
                 "--browser.gatherUsageStats", "false"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    return start_on_free_port(launch, timeout=timeout)


def listening_socket() -> socket.socket:
    """A socket listening on a loopback port the kernel chose (port 0), for an in-process
    server (``uvicorn.Server.run(sockets=[...])``); read the port with ``getsockname()[1]``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if ``process`` has not exited after ``timeout`` s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


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

    threading.Thread.start = recording_start  # type: ignore[method-assign,assignment]
    try:
        yield started
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]


def kill_at_marker(args: list[str], env: dict[str, str], marker: Path, what: str) -> int:
    """Run ``args`` (a child that creates ``marker`` at the moment to kill it, and prints
    "finished" if it ever gets past), SIGKILL it once ``marker`` exists, and return its pid.
    Fails the test when the child ended before the marker, never reached it in 240 s, or was
    not the one killed. ``what`` names the moment, for the failure messages."""
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            if child.poll() is not None:
                raise AssertionError(f"the child ended before {what}: {child.communicate()}")
            assert time.monotonic() < deadline, f"the child never reached {what}"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        out, _ = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL and "finished" not in out
    return child.pid
