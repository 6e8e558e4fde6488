"""Nothing lost: a restore brings back every memory and every key exactly, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_settings

from jamey_engine.engine import Engine
from jamey_engine.errors import KeyRejected
from jamey_engine.memory import LAYERS
from jamey_engine.oplog import operation_summary

from .support import change_everything, fill, state


def test_restore_brings_back_every_memory_and_key_exactly(db_engine: Engine, tmp_path: Path) -> None:
    fill(db_engine)
    before = state(db_engine, tmp_path)
    backup = db_engine.vault.create()
    assert backup.documents == {layer: 12 for layer in LAYERS}
    assert backup.keys == 4
    change_everything(db_engine)
    assert state(db_engine, tmp_path) != before

    plan = db_engine.vault.restore(backup.id, reenable_keys=True)

    after = state(db_engine, tmp_path)
    assert {k: v for k, v in after.items() if k != "key_events"} == {
        k: v for k, v in before.items() if k != "key_events"
    }
    # The audit is appended to, never replaced: the revocation made after the backup stays in it.
    assert after["key_events"][: len(before["key_events"])] == before["key_events"]
    assert [event["event"] for event in after["key_events"][len(before["key_events"]) :]] == [
        "created",
        "revoked",
    ]
    assert plan.safety_backup_id is not None
    assert plan.dry_run is False
    safety = db_engine.vault.verify(plan.safety_backup_id)
    assert safety.status == "ok"
    assert safety.documents["working"] == 12  # one deleted, one added
    assert safety.keys == 5
    summary = operation_summary(db_engine.db)
    assert summary.counts[("restore", "success")] == 1
    assert summary.counts[("backup", "success")] == 2  # the backup and the safety backup


def test_a_key_revoked_after_the_backup_stays_revoked_with_its_audit_after_a_restore(
    db_engine: Engine,
) -> None:
    key = db_engine.keys.create("incident", scopes=("memory:read",))
    backup = db_engine.vault.create()
    db_engine.keys.revoke(key.id, actor="oncall")
    db_engine.vault.restore(backup.id, safety_backup=False)
    fresh = Engine(db_engine.settings)  # no verification cache carried over
    try:
        with pytest.raises(KeyRejected):
            fresh.keys.verify(key.key)
        assert fresh.keys.show(key.id).status == "revoked"
        trail = [(e["event"], e["actor"]) for e in fresh.keys.audit(key_id=key.id)]
        assert ("revoked", "oncall") in trail
    finally:
        fresh.close()


def test_a_key_rotated_after_the_backup_stays_rotated_and_its_replacement_works(db_engine: Engine) -> None:
    key = db_engine.keys.create("rotated", scopes=("memory:read",))
    backup = db_engine.vault.create()
    replacement = db_engine.keys.rotate(key.id)
    db_engine.vault.restore(backup.id, safety_backup=False)
    fresh = Engine(db_engine.settings)
    try:
        with pytest.raises(KeyRejected):
            fresh.keys.verify(key.key)
        assert fresh.keys.verify(replacement.key).name == "rotated"
    finally:
        fresh.close()


def test_reenable_keys_brings_back_a_key_revoked_after_the_backup_and_a_restored_revocation_holds(
    db_engine: Engine, tmp_path: Path
) -> None:
    kept = db_engine.keys.create("kept", scopes=("memory:read",))
    revoked = db_engine.keys.create("revoked", scopes=("memory:read",))
    db_engine.keys.revoke(revoked.id)
    backup = db_engine.vault.create()
    db_engine.keys.revoke(kept.id)
    db_engine.vault.restore(backup.id, safety_backup=False, reenable_keys=True)
    fresh = Engine(db_engine.settings)  # no verification cache carried over
    try:
        assert fresh.keys.verify(kept.key).name == "kept"
        assert fresh.keys.show(revoked.id).status == "revoked"
    finally:
        fresh.close()


def test_a_sqlite_backup_restores_into_postgresql(tmp_path: Path, postgres_url: str) -> None:
    backups = tmp_path / "backups"
    # The signing key travels with the backups (the emergency kit): both sides name the same file.
    key = str(tmp_path / "kit" / "backup-signing.key")
    source = Engine(
        make_settings(tmp_path / "source", JAMEY_BACKUP_DIR=str(backups), JAMEY_BACKUP_SIGNING_KEY_FILE=key)
    )
    target = Engine(
        make_settings(
            tmp_path / "target",
            JAMEY_BACKUP_DIR=str(backups),
            JAMEY_DATABASE_URL=postgres_url,
            JAMEY_BACKUP_SIGNING_KEY_FILE=key,
        )
    )
    try:
        fill(source)
        before = state(source, tmp_path)
        backup = source.vault.create()
        assert source.vault.get(backup.id).status == "unverified"
        target.memory.store("working", "only in the target, replaced by the restore")
        target.vault.restore(backup.id)
        assert state(target, tmp_path) == before
        assert target.db.dialect == "postgresql"
    finally:
        source.close()
        target.close()


def test_dry_run_reports_the_difference_and_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    fill(engine)
    backup = engine.vault.create()
    change_everything(engine)
    before = state(engine, tmp_path)
    listed = [info.id for info in engine.vault.list()]

    plan = engine.vault.plan_restore(backup.id)

    assert plan.layers["working"] == (12, 12)  # one deleted, one added: same count
    assert plan.layers["long_term"] == (13, 12)
    assert plan.keys == (5, 4)
    assert plan.dry_run is True
    assert state(engine, tmp_path) == before
    assert [info.id for info in engine.vault.list()] == listed
