"""Retention: keep the newest N and/or the last D days, never the newest backup; stale leftovers go."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import time_machine

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.errors import InvalidInput, NotFound
from jamey_engine.fsutil import lock_new_file


def make_backups(engine: Engine, count: int) -> list[str]:
    engine.memory.store("working", "something to back up")
    return [engine.vault.create().id for _ in range(count)]


def test_keep_last_deletes_all_but_the_newest_n(engine: Engine) -> None:
    ids = make_backups(engine, 4)
    assert engine.vault.retain(keep_last=2) == ids[:2]
    assert [info.id for info in engine.vault.list()] == ids[:1:-1]


def test_keep_days_keeps_the_recent_ones_and_always_the_newest(engine: Engine) -> None:
    ids = make_backups(engine, 3)
    with time_machine.travel(utcnow() + timedelta(days=3)):
        assert engine.vault.retain(keep_days=5) == []
        assert engine.vault.retain(keep_days=2) == ids[:2]
    assert [info.id for info in engine.vault.list()] == [ids[2]]


def test_keep_last_and_keep_days_keep_their_union(engine: Engine) -> None:
    ids = make_backups(engine, 3)
    with time_machine.travel(utcnow() + timedelta(days=3)):
        assert engine.vault.retain(keep_last=1, keep_days=10) == []
        assert engine.vault.retain(keep_last=2, keep_days=1) == ids[:1]


def test_without_rules_the_settings_apply_and_zero_keeps_all(engine: Engine) -> None:
    make_backups(engine, 2)
    vault = engine.vault
    vault.settings = vault.settings.with_overrides(backup_keep=0)
    assert vault.retain() == []
    vault.settings = vault.settings.with_overrides(backup_keep=1)
    assert len(vault.retain()) == 1


@pytest.mark.parametrize(
    ("keep_last", "keep_days", "named"), [(0, None, "keep_last 0"), (None, -1, "keep_days -1")]
)
def test_bad_retention_rules_are_refused_and_nothing_is_deleted(
    engine: Engine, keep_last: int | None, keep_days: int | None, named: str
) -> None:
    make_backups(engine, 2)
    with pytest.raises(InvalidInput, match=named):
        engine.vault.retain(keep_last=keep_last, keep_days=keep_days)
    assert len(engine.vault.list()) == 2


def test_delete_removes_the_archive_and_its_catalog_entry(engine: Engine) -> None:
    (backup_id,) = make_backups(engine, 1)
    engine.vault.delete(backup_id)
    assert list(engine.settings.backup_dir.iterdir()) == []
    with pytest.raises(NotFound):
        engine.vault.delete(backup_id)


def test_listing_removes_stale_temporaries_but_not_those_of_a_running_backup(engine: Engine) -> None:
    (backup_id,) = make_backups(engine, 1)
    catalog = engine.vault.catalog
    dead = catalog.partial_path("20200101T000000Z-dead00")
    dead.write_bytes(b"half an archive")
    dead_staging = engine.settings.data_dir / ".backup-staging-20200101T000000Z-dead00"
    dead_staging.mkdir()
    (dead_staging / ".owner").touch()  # its owner died: nobody holds the lock
    live_staging = engine.settings.data_dir / ".backup-staging-20200101T000000Z-a11ce0"
    live_staging.mkdir()
    owner = lock_new_file(live_staging / ".owner")
    orphan = catalog.sidecar_path("20200101T000000Z-dead00")
    orphan.write_text("{}")
    running = catalog.partial_path("20200101T000000Z-a11ce0")
    fd = lock_new_file(running)
    try:
        assert [info.id for info in engine.vault.list()] == [backup_id]
        assert not dead.exists() and not orphan.exists()
        assert not dead_staging.exists()
        assert running.exists() and live_staging.exists()
    finally:
        os.close(fd)
        os.close(owner)
    engine.vault.list()
    assert not running.exists() and not live_staging.exists()
