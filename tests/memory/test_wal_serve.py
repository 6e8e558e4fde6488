"""SIGKILL of a real ``jamey serve`` under 32 writing connections (one worker and two), and of
its flusher process at random moments: nothing acknowledged is lost or stored twice."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from helpers import REDIS_URL, copies_of_each_id, free_port, wait_until, wait_until_listening

from jamey_engine.engine import Engine
from jamey_engine.fsutil import process_alive
from jamey_engine.memory import MemoryStore
from jamey_engine.memory.flusher import holder

FLUSH_INTERVAL = 0.2


def _serve(engine: Engine, port: int, log_path: Path, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(engine.settings.data_dir),
        "JAMEY_GLOBAL_RATE_LIMIT": "1000000/minute",
        "JAMEY_FLUSH_INTERVAL": str(FLUSH_INTERVAL),
        "JAMEY_WORKERS": str(workers),
    }
    if workers > 1:
        env["JAMEY_RATE_LIMIT_STORAGE"] = REDIS_URL
    env.pop("API_KEY", None)
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "jamey_engine", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers and flusher share its group: killed together at the end
        )


def _kill_group(server: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``jamey serve`` (as a crash would), then whatever of its group outlived it."""
    if server.poll() is None:
        server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)


def _writers(
    port: int, key: str, tag: str, acknowledged: list[str], lock: threading.Lock, stop: threading.Event
) -> list[threading.Thread]:
    def write(n: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    answer = client.post(
                        "/memories",
                        json={"layer": "episodic", "content": f"served {tag} {n} {i}"},
                        headers={"Authorization": f"Bearer {key}"},
                    )
                except httpx.HTTPError:
                    if stop.is_set():
                        return  # the server was killed: this write was never acknowledged
                    continue
                if answer.status_code == 201:
                    with lock:
                        acknowledged.append(answer.json()["id"])

    pool = [threading.Thread(target=write, args=(n,)) for n in range(32)]
    for thread in pool:
        thread.start()
    return pool


def _check(engine: Engine, acknowledged: list[str]) -> None:
    reopened = MemoryStore(engine.settings.memory_dir)
    try:
        copies = copies_of_each_id(reopened, "episodic")
    finally:
        reopened.close()
    missing_or_doubled = {i: copies[i] for i in acknowledged if copies[i] != 1}
    assert not missing_or_doubled, "every acknowledged memory is there exactly once"
    assert max(copies.values()) == 1, "a replay indexed a memory twice"


def _more_than(acknowledged: list[str], count: int, server: subprocess.Popen[bytes]) -> Callable[[], bool]:
    def check() -> bool:
        assert server.poll() is None, "jamey serve ended"
        return len(acknowledged) > count

    return check


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_of_jamey_serve_under_32_connections_loses_no_acknowledged_memory(
    engine: Engine, tmp_path: Path, workers: int
) -> None:
    key = engine.keys.create("crash-writer", scopes=("memory:write",), rate_limit="100000/minute").key
    rng = random.Random(20 + workers)
    acknowledged: list[str] = []
    lock = threading.Lock()
    for attempt in range(3):
        port = free_port()
        server = _serve(engine, port, tmp_path / "serve.log", workers)
        stop = threading.Event()
        pool: list[threading.Thread] = []
        try:
            wait_until_listening(server, port, timeout=60)
            before = len(acknowledged)
            pool = _writers(port, key, str(attempt), acknowledged, lock, stop)
            wait_until(_more_than(acknowledged, before + 20, server), 30, "acknowledged writes")
            time.sleep(rng.uniform(0.05, 0.8))
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
        finally:
            stop.set()
            _kill_group(server)
        for thread in pool:
            thread.join(timeout=30)
    assert len(acknowledged) > 60
    _check(engine, acknowledged)


def test_the_flusher_of_jamey_serve_killed_at_random_moments_is_restarted_and_loses_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    """Two workers under 32 connections; the flusher (a child of jamey serve holding the data
    dir's lease) is SIGKILLed at random moments. jamey serve restarts it, writes become visible
    to another process again, and every acknowledged id is there once after the final crash."""
    key = engine.keys.create("crash-writer", scopes=("memory:write",), rate_limit="100000/minute").key
    memory_dir = engine.settings.memory_dir
    rng = random.Random(31)
    acknowledged: list[str] = []
    lock = threading.Lock()
    port = free_port()
    server = _serve(engine, port, tmp_path / "serve.log", 2)
    stop = threading.Event()
    pool: list[threading.Thread] = []
    reader = MemoryStore(memory_dir, flush_interval=3600)  # never flushes: sees only the flusher's work
    try:
        wait_until_listening(server, port, timeout=60)
        pool = _writers(port, key, "flusher", acknowledged, lock, stop)
        killed: set[int] = set()
        for _ in range(4):
            flusher = wait_until(
                lambda: (pid := holder(memory_dir)) not in killed and process_alive(pid) and pid,
                60,
                "a running flusher holding the lease",
            )
            wait_until(_more_than(acknowledged, len(acknowledged) + 10, server), 30, "acknowledged writes")
            time.sleep(rng.uniform(0.0, 0.6))
            os.kill(flusher, signal.SIGKILL)
            killed.add(flusher)
        # The restarted flusher makes new writes visible elsewhere (restart backoff, then the bound).
        count = len(acknowledged)
        wait_until(_more_than(acknowledged, count + 10, server), 30, "acknowledged writes")
        with lock:
            latest = acknowledged[-1]
        wait_until(
            lambda: reader.count("episodic") and _held(reader, latest), 60, "a write flushed after the kills"
        )
    finally:
        stop.set()
        _kill_group(server)
        reader.close()
    for thread in pool:
        thread.join(timeout=30)
    assert len(acknowledged) > 60
    _check(engine, acknowledged)


def _held(store: MemoryStore, memory_id: str) -> bool:
    try:
        store.get("episodic", memory_id)
    except Exception:
        return False
    return True
