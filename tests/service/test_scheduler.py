"""The scheduled backup loop: success applies retention, failure is logged and counted, timing."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from service_support import service_settings

from jamey_engine.engine import Engine
from jamey_engine.observability.metrics import build_registry
from jamey_engine.service.scheduler import BackupScheduler


def test_a_run_backs_up_then_keeps_only_the_newest(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    engine = Engine(service_settings(data_dir, JAMEY_BACKUP_KEEP="2"))
    try:
        engine.memory.store("working", "worth keeping")
        scheduler = BackupScheduler(engine, timedelta(hours=1))
        assert scheduler.first_delay() == 0  # no backup yet: take one now
        for _ in range(3):
            assert scheduler.run_once() is True
        assert len(engine.vault.list()) == 2
        assert scheduler.runs == 3 and scheduler.failures == 0
        delay = scheduler.first_delay()  # the next one is due an interval after the latest
        assert 3500 < delay <= 3600
    finally:
        engine.close()


def test_a_failed_run_is_logged_and_shows_in_metrics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    blocker = tmp_path / "backups-is-a-file"
    blocker.write_text("not a directory")
    engine = Engine(service_settings(data_dir, JAMEY_BACKUP_DIR=str(blocker)))
    try:
        registry = build_registry(engine)
        scheduler = BackupScheduler(engine, timedelta(hours=1))
        with caplog.at_level(logging.ERROR, logger="jamey_engine.service.scheduler"):
            assert scheduler.run_once() is False
        assert scheduler.failures == 1
        assert any("scheduled backup failed" in r.getMessage() for r in caplog.records)
        assert registry.get_sample_value("backup_operations_total", {"status": "failure"}) == 1
    finally:
        engine.close()


def test_stop_ends_the_loop_promptly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    engine = Engine(service_settings(data_dir))
    try:
        engine.vault.create()  # the next scheduled one is a day away
        scheduler = BackupScheduler(engine, timedelta(days=1)).start()
        scheduler.stop(timeout=5)
        assert not scheduler._thread.is_alive()
        assert scheduler.runs == 0
    finally:
        engine.close()
