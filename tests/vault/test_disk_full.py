"""Disk full, on a real small tmpfs: a clean error, nothing half-written, the live data untouched."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import make_settings

from jamey_engine.engine import Engine
from jamey_engine.errors import Unavailable
from jamey_engine.oplog import operation_summary

from .support import fill, state


def test_disk_full_during_backup_is_a_clean_error_that_leaves_nothing(
    tmp_path: Path, tmpfs: Callable[[Path, str], Path]
) -> None:
    backups = tmpfs(tmp_path / "small", "1m")
    engine = Engine(make_settings(tmp_path / "data", JAMEY_BACKUP_DIR=str(backups)))
    try:
        fill(engine, per_layer=8, content_bytes=40_000)  # ~1.6 MB of incompressible text
        live = state(engine, tmp_path)
        with pytest.raises(Unavailable) as caught:
            engine.vault.create()
        assert caught.value.message.startswith(f"no space left on device while writing backup to {backups}")
        assert os.listdir(backups) == []
        assert not [p for p in engine.settings.data_dir.iterdir() if p.name.startswith(".backup-staging-")]
        assert engine.vault.list() == []
        assert state(engine, tmp_path) == live
        summary = operation_summary(engine.db)
        assert summary.counts[("backup", "failure")] == 1
        assert summary.counts[("backup", "success")] == 0
    finally:
        engine.close()


def test_disk_full_during_restore_leaves_the_live_data_as_it_was(
    tmp_path: Path, tmpfs: Callable[[Path, str], Path]
) -> None:
    data = tmpfs(tmp_path / "data", "16m")
    engine = Engine(make_settings(data, JAMEY_BACKUP_DIR=str(tmp_path / "backups")))
    try:
        fill(engine, per_layer=8, content_bytes=40_000)
        backup = engine.vault.create()
        engine.memory.store("semantic", "written after the backup")
        live = state(engine, tmp_path)
        # Leave far less room than the staged copy needs.
        stat = os.statvfs(data)
        filler = data / "filler"
        filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - 400_000))
        with pytest.raises(Unavailable, match="no space left on device"):
            engine.vault.restore(backup.id, safety_backup=False)
        assert not [p for p in data.iterdir() if p.name.startswith(".restore-")]
        filler.unlink()
        assert state(engine, tmp_path) == live
        assert operation_summary(engine.db).counts[("restore", "failure")] == 1
    finally:
        engine.close()
