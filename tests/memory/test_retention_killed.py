"""A retention apply killed with SIGKILL in the middle of its prune: the layer opens and searches,
and the next run sweeps the leftover generation and finishes the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import wait_until

from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"


def _generations(layer_dir: Path) -> list[str]:
    return sorted(p.name for p in layer_dir.iterdir() if p.is_dir())


def test_a_killed_apply_leaves_the_layer_readable_and_the_next_run_finishes(data_dir: Path) -> None:
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    now = utcnow()
    old = [
        {"content": f"old memory {i} about disks", "timestamp": now - timedelta(days=90)}
        for i in range(60_000)
    ]
    fresh = [
        {"content": f"fresh memory {i} about disks", "timestamp": now - timedelta(hours=1)}
        for i in range(500)
    ]
    engine.memory.store_batch("working", old + fresh)
    engine.retention.set("working", max_age="30d", actor="tester")
    layer_dir = data_dir / "memory" / "working"
    [before] = _generations(layer_dir)
    engine.close()

    # The apply runs in its own process and stops where a crash hurts most: its new generation
    # built, the switch not made. It is killed there (no race with a poll).
    said = data_dir.parent / "built"
    env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(data_dir),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)]),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from memory.workers import apply_retention_stopped_before_the_switch as a; a(*sys.argv[1:])",
         str(data_dir), str(said)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(
            lambda: said.exists() or process.poll() is not None, 120, "the prune to build its generation"
        )
        assert process.poll() is None, "the apply ended before its switch"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert len(_generations(layer_dir)) == 2, "killed with the new generation built beside the old"

    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        count = engine.memory.count("working")
        assert count == 60_500, "the layer is still the old generation, whole"
        assert len(engine.memory.search("working", "fresh", limit=1000)) == 500
        run = engine.apply_retention(actor="tester")
        assert engine.memory.count("working") == 500
        assert run.layers[0].deleted == count - 500
        assert _generations(layer_dir) == [engine.memory.layer_path("working").name], "no stray generation"
        assert _generations(layer_dir) != [before]
        assert not list((data_dir / "memory").glob(".CURRENT.*.tmp"))
        assert len(engine.memory.search("working", "disks", limit=1000)) == 500
    finally:
        engine.close()
