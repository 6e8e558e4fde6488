"""Restore while another process writes: no write acknowledged after the switch is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
from helpers import free_port, wait_until, wait_until_listening

from jamey_engine.engine import Engine

from .support import fill, state

# Another process storing memories in a loop, one line per acknowledged write: id, start, end.
WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine

    stop = Path(sys.argv[1])
    engine = Engine(Settings.from_env())
    n = 0
    while not stop.exists():
        started = time.time()
        try:
            memory = engine.memory.store("working", f"live write {n}")
        except Exception as err:
            print(f"ERR {type(err).__name__}: {err}", flush=True)
            continue
        print(f"{memory.id} {started} {time.time()}", flush=True)
        n += 1
    engine.close()
    """
)


def test_writes_acknowledged_after_the_switch_survive_the_restore(engine: Engine, tmp_path: Path) -> None:
    fill(engine, per_layer=20)
    backup = engine.vault.create()
    before = state(engine, tmp_path)
    stop = tmp_path / "stop"
    output = tmp_path / "writes.txt"
    env = {**os.environ, "JAMEY_DATA_DIR": str(engine.settings.data_dir)}
    with open(output, "w") as sink:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(stop)], env=env, stdout=sink)
        try:
            _wait_for_lines(output, 5, writer)
            plan = engine.vault.restore(backup.id, safety_backup=True)
            assert plan.switched_at is not None
            written_before = len(output.read_text().splitlines())
            _wait_for_lines(output, written_before + 10, writer)
        finally:
            stop.touch()
            writer.wait(timeout=60)
    assert writer.returncode == 0
    lines = output.read_text().splitlines()
    errors = [line for line in lines if line.startswith("ERR")]
    assert errors == [], errors  # no write failed during the restore, as through the service
    acknowledged = [line.split() for line in lines]
    after = [memory_id for memory_id, started, _ in acknowledged if float(started) > plan.switched_at]
    assert len(after) >= 10
    for memory_id in after:
        assert engine.memory.get("working", memory_id).content.startswith("live write")
    # Everything else is exactly the backup: the other layers, and the keys.
    now = state(engine, tmp_path)
    assert now["keys"] == before["keys"]
    for layer, rows in before["memories"].items():
        if layer != "working":
            assert now["memories"][layer] == rows
    kept_ids = {row["id"] for row in now["memories"]["working"]}
    assert {row["id"] for row in before["memories"]["working"]} <= kept_ids
    # The safety backup holds the writes made before the switch.
    assert plan.safety_backup_id is not None
    assert engine.vault.verify(plan.safety_backup_id).documents["working"] > 20


def _wait_for_lines(path: Path, count: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while len([line for line in path.read_text().splitlines() if not line.startswith("ERR")]) < count:
        assert process.poll() is None, "the writer process died"
        assert time.monotonic() < deadline, f"fewer than {count} writes within 60 s"
        time.sleep(0.02)


def test_writes_through_a_running_jamey_serve_after_the_switch_survive_the_restore(
    engine: Engine, tmp_path: Path
) -> None:
    fill(engine, per_layer=5)
    writer_key = engine.keys.create(
        "service-writer", scopes=("memory:write",), rate_limit="100000/minute"
    ).key
    backup = engine.vault.create()
    port = free_port()
    env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(engine.settings.data_dir),
        "JAMEY_GLOBAL_RATE_LIMIT": "1000000/minute",
    }
    env.pop("API_KEY", None)
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "jamey_engine", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    acknowledged: list[tuple[str, float]] = []
    failures: list[str] = []
    stop = threading.Event()

    def write_loop() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            n = 0
            while not stop.is_set():
                started = time.time()
                answer = client.post(
                    "/memories",
                    json={"layer": "episodic", "content": f"served write {n}"},
                    headers={"Authorization": f"Bearer {writer_key}"},
                )
                if answer.status_code == 201:
                    acknowledged.append((answer.json()["id"], started))
                else:
                    failures.append(f"{answer.status_code} {answer.text}")
                n += 1

    thread = threading.Thread(target=write_loop)
    try:
        wait_until_listening(server, port, timeout=30)
        thread.start()
        wait_until(
            lambda: _alive(server) and len(acknowledged) >= 5, 60, "five acknowledged writes", every=0.02
        )
        plan = engine.vault.restore(backup.id)
        assert plan.switched_at is not None
        switched_at = plan.switched_at
        wait_until(
            lambda: _alive(server) and sum(1 for _, t in acknowledged if t > switched_at) >= 10,
            60,
            "ten acknowledged writes after the switch",
            every=0.02,
        )
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=60)
        server.terminate()
        server.wait(timeout=30)
    assert failures == [], failures
    after = [memory_id for memory_id, started in acknowledged if started > switched_at]
    for memory_id in after:
        assert engine.memory.get("episodic", memory_id).content.startswith("served write")


def _alive(process: subprocess.Popen[bytes]) -> bool:
    """True while ``process`` runs; fails the wait at once when it died."""
    assert process.poll() is None, "the service process died"
    return True
