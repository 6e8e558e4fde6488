"""Killed mid-backup with SIGKILL: earlier backups stay valid and no partial backup is listed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jamey_engine.engine import Engine
from jamey_engine.memory import LAYERS

from .support import fill

# A real backup in a separate process; its progress callback slows it down (so the kill lands
# mid-archive on any machine) and says when archiving has started.
SLOW_BACKUP = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine

    marker = Path(sys.argv[1])

    def progress(done, total, stage):
        if stage.startswith("archiving"):
            marker.touch()
            time.sleep(0.05)

    Engine(Settings.from_env()).vault.create(progress)
    print("finished")
    """
)


def test_a_backup_killed_mid_way_leaves_earlier_backups_valid_and_no_partial_listed(
    engine: Engine, tmp_path: Path
) -> None:
    fill(engine, per_layer=30)
    earlier = engine.vault.create()
    marker = tmp_path / "archiving"
    env = {**os.environ, "JAMEY_DATA_DIR": str(engine.settings.data_dir)}
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_BACKUP, str(marker)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, "the backup process ended before archiving"
            assert time.monotonic() < deadline, "the backup never started archiving"
            time.sleep(0.01)
        backups = engine.settings.backup_dir
        assert [p.name for p in backups.iterdir() if p.name.endswith(".partial")]  # mid-write
    finally:
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
    assert child.returncode == -signal.SIGKILL and "finished" not in out

    assert [info.id for info in engine.vault.list()] == [earlier.id]
    assert engine.vault.verify(earlier.id).status == "ok"
    leftovers = [p.name for p in backups.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert not [p for p in engine.settings.data_dir.iterdir() if p.name.startswith(".backup-staging-")]
    assert engine.vault.create().status == "unverified"  # and the next backup works


@pytest.mark.slow
def test_jamey_backup_create_killed_mid_way_leaves_no_partial_listed(engine: Engine, tmp_path: Path) -> None:
    # Grow the data dir until one backup takes over half a second here, so the kill lands mid-way.
    earlier: list[str] = []
    for round_number in range(12):
        engine.memory.store_batch(
            LAYERS[round_number % 5], [{"content": _bulky(round_number, n)} for n in range(150)]
        )
        started = time.monotonic()
        earlier.append(engine.vault.create().id)
        if time.monotonic() - started > 0.5:
            break
    env = {**os.environ, "JAMEY_DATA_DIR": str(engine.settings.data_dir)}
    backups = engine.settings.backup_dir
    child = subprocess.Popen(
        [sys.executable, "-m", "jamey_engine", "backup", "create", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.endswith(".partial") for p in backups.iterdir()):
            assert child.poll() is None, "the backup ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.002)
    finally:
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
    assert child.returncode == -signal.SIGKILL and out == b""
    assert {info.id for info in engine.vault.list()} == set(earlier)
    assert engine.vault.verify(earlier[-1]).status == "ok"
    assert [p.name for p in backups.iterdir() if p.name.startswith(".")] == []


def _bulky(round_number: int, n: int) -> str:
    words = [f"w{(round_number * 7919 + n * 104729 + i * 31) % 50021:x}" for i in range(4000)]
    return f"bulk {round_number} {n} " + " ".join(words)
