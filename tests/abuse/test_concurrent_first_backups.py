"""Concurrent first backups on an empty backup dir: every one succeeds, none leaves a marker
behind, and none removes another's.

Found by 45 parallel retention applies (each took a backup first): one failed with "could not
write backup ... No such file or directory (.backup-staging-<id>/.owner)". A backup makes its
marker files (the ``.tmp-<id>.tar.zst.partial`` it writes and the staging dir's ``.owner``)
and then flocks them; each backup first cleans what killed backups left, judging a marker by
its lock. A cleaner that looked in between found a fresh marker unlocked and removed it (or
its probe took the lock first). Seen failing on the old code: 3 of 5 rounds of 12 processes
had one to four failed backups; the hook test below failed with FileNotFoundError.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from abuse.backup_workers import first_backup
from jamey_engine import fsutil
from jamey_engine.engine import Engine
from jamey_engine.vault.catalog import BACKUP_STAGING_PREFIX

PROCESSES = 12
ROUNDS = 2


def _seed(data_dir: Path) -> None:
    from helpers import make_settings

    engine = Engine(make_settings(data_dir))
    try:
        engine.memory.store("short_term", "the one memory every backup holds")
    finally:
        engine.close()


def _assert_sound(data_dir: Path, succeeded: list[str]) -> None:
    from helpers import make_settings

    engine = Engine(make_settings(data_dir))
    try:
        listed = [info.id for info in engine.vault.list()]
        assert sorted(listed) == sorted(succeeded)
        assert {engine.vault.verify(backup_id).status for backup_id in listed} == {"ok"}
        backup_dir = engine.settings.backup_dir
        assert [p.name for p in backup_dir.iterdir() if p.name.startswith(".")] == []
        assert not [p for p in data_dir.iterdir() if p.name.startswith(BACKUP_STAGING_PREFIX)]
    finally:
        engine.close()


@pytest.mark.parametrize("round_number", range(ROUNDS))
def test_parallel_first_backups_all_succeed_and_leave_a_sound_dir(tmp_path: Path, round_number: int) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    _seed(data_dir)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=first_backup, args=(str(data_dir), barrier, results)) for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    failed = [detail for status, detail in outcomes if status != "ok"]
    assert failed == []
    _assert_sound(data_dir, [detail for status, detail in outcomes if status == "ok"])


def test_a_cleaner_probing_while_a_marker_is_made_finds_it_locked_or_not_at_all(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The deterministic form of the race: another process's clean_stale runs exactly between
    # the making of each marker and its lock (here: inside the creator's own flock call).
    engine.memory.store("short_term", "something to back up")
    real_flock = fsutil.fcntl.flock
    cleaned: list[list[Path]] = []
    busy = False

    def flock_with_a_cleaner_first(fd: int, operation: int) -> Any:
        nonlocal busy
        if not busy and operation == fsutil.fcntl.LOCK_EX | fsutil.fcntl.LOCK_NB:
            busy = True
            try:
                cleaned.append(engine.vault.catalog.clean_stale())
            finally:
                busy = False
        return real_flock(fd, operation)

    monkeypatch.setattr(fsutil.fcntl, "flock", flock_with_a_cleaner_first)
    info = engine.vault.create()
    monkeypatch.undo()
    assert len(cleaned) >= 2  # the partial archive and the staging owner
    assert cleaned == [[]] * len(cleaned)
    assert engine.vault.verify(info.id).status == "ok"


def test_a_new_marker_is_exclusive(tmp_path: Path) -> None:
    marker = tmp_path / ".owner"
    fd = fsutil.lock_new_file(marker)
    try:
        assert fsutil.is_held(marker)
        with pytest.raises(FileExistsError):
            fsutil.lock_new_file(marker)
        assert sorted(p.name for p in tmp_path.iterdir()) == [".owner"]
    finally:
        os.close(fd)
    assert not fsutil.is_held(marker)


def test_parallel_backup_commands_print_no_traceback(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    _seed(data_dir)
    env = {**os.environ, "JAMEY_DATA_DIR": str(data_dir)}
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "jamey_engine", "backup", "create", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    finished = [(*child.communicate(timeout=300), child.returncode) for child in children]
    for _out, err, code in finished:
        assert "Traceback" not in err, err
        assert code == 0, err
    _assert_sound(data_dir, [json.loads(out)["id"] for out, _err, _code in finished])
