"""SIGKILL of a real ``jamey serve`` under 32 writing connections: nothing acknowledged is lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from helpers import copies_of_each_id, free_port, wait_until_listening

from jamey_engine.engine import Engine
from jamey_engine.memory import MemoryStore


def _serve(engine: Engine, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(engine.settings.data_dir),
        "JAMEY_GLOBAL_RATE_LIMIT": "1000000/minute",
        "JAMEY_FLUSH_INTERVAL": "0.2",
    }
    env.pop("API_KEY", None)
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "jamey_engine", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


def test_sigkill_of_jamey_serve_under_32_connections_loses_no_acknowledged_memory(
    engine: Engine, tmp_path: Path
) -> None:
    key = engine.keys.create("crash-writer", scopes=("memory:write",), rate_limit="100000/minute").key
    rng = random.Random(20)
    acknowledged: list[str] = []
    lock = threading.Lock()
    for attempt in range(3):
        port = free_port()
        server = _serve(engine, port, tmp_path / "serve.log")
        stop = threading.Event()

        def write(n: int, port: int = port, stop: threading.Event = stop, attempt: int = attempt) -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        answer = client.post(
                            "/memories",
                            json={"layer": "episodic", "content": f"served {attempt} {n} {i}"},
                            headers={"Authorization": f"Bearer {key}"},
                        )
                    except httpx.HTTPError:
                        return  # the server was killed: this write was never acknowledged
                    if answer.status_code == 201:
                        with lock:
                            acknowledged.append(answer.json()["id"])

        try:
            wait_until_listening(server, port, timeout=60)
            before = len(acknowledged)
            pool = [threading.Thread(target=write, args=(n,)) for n in range(32)]
            for thread in pool:
                thread.start()
            deadline = time.monotonic() + 30
            while len(acknowledged) - before < 20:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(rng.uniform(0.05, 0.8))
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
        finally:
            stop.set()
            if server.poll() is None:
                server.kill()
                server.wait()
        for thread in pool:
            thread.join(timeout=30)
    assert len(acknowledged) > 60
    reopened = MemoryStore(engine.settings.memory_dir)
    try:
        copies = copies_of_each_id(reopened, "episodic")
    finally:
        reopened.close()
    missing_or_doubled = {i: copies[i] for i in acknowledged if copies[i] != 1}
    assert not missing_or_doubled, "every acknowledged memory is there exactly once"
    assert max(copies.values()) == 1, "a replay indexed a memory twice"
