"""A retention apply killed with SIGKILL in the middle of its prune: the layer opens and searches,
and the next run sweeps the leftover generation and finishes the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


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

    env = {**os.environ, "JAMEY_DATA_DIR": str(data_dir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "jamey_engine", "memory", "retention", "apply", "--yes"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    try:
        while len(_generations(layer_dir)) < 2:  # the prune is building its new generation
            assert process.poll() is None, "the apply ended before it was caught mid-prune"
            assert time.monotonic() < deadline, "no new generation appeared"
            time.sleep(0.002)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert len(_generations(layer_dir)) >= 2, "killed while a generation was being built"

    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        count = engine.memory.count("working")
        assert count in (60_500, 500), "the layer is the old or the new generation, never half"
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
