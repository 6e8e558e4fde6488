"""The remediation notebooks (take_backup, flush_memory_log, apply_retention, rotate_key) under
plain papermill: each changes data only through the plan contract. A dry run stores the plan and
returns its plan_id and confirm_phrase; an applying run applies exactly that plan; the unattended
form plans and applies at once, and stops plainly when the plan needs a second key's approval."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from notebook_runner import Executed, counts, fingerprint, run_notebook
from seed_data import NEW_PER_LAYER, OLD_PER_LAYER

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.plans import store
from jamey_engine.runbooks.runner import summary_of

pytestmark = pytest.mark.slow  # a kernel per notebook run


def summary_of_run(run: Executed) -> dict[str, Any]:
    """The dict the notebook's last cell returned (what the runner stores as the run's summary)."""
    found = summary_of(run.notebook)
    assert found is not None, run.text
    return found


def _engine(data_dir: Path, **env: str) -> Engine:
    return Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir), **env}))


def _plans(data_dir: Path) -> list[store.PlanRecord]:
    engine = _engine(data_dir)
    try:
        return store.list_plans(engine.db)
    finally:
        engine.close()


def test_take_backup_dry_run_stores_a_plan_and_the_applying_run_applies_exactly_it(
    seeded_dir: Path, tmp_path: Path
) -> None:
    before = fingerprint(seeded_dir)
    dry = run_notebook("take_backup.ipynb", tmp_path, data_dir=str(seeded_dir))
    summary: dict[str, Any] = summary_of_run(dry)
    assert "Preflight passed." in dry.text and "encryption settings" in dry.text
    assert summary["confirm_phrase"] == "take a backup" and summary["plan_status"] == "planned"
    assert summary["outcome"] == "dry_run" and summary["error"] is None
    assert fingerprint(seeded_dir) == before  # the plan is the only thing a dry run stores
    assert [plan.id for plan in _plans(seeded_dir)] == [summary["plan_id"]]

    applied = run_notebook(
        "take_backup.ipynb",
        tmp_path,
        data_dir=str(seeded_dir),
        plan_id=summary["plan_id"],
        dry_run=False,
        confirm="take a backup",
    )
    done = summary_of_run(applied)
    assert done["plan_id"] == summary["plan_id"] and done["plan_status"] == "applied", applied.text
    assert done["verified"] is True and done["backup"]
    assert "Verified." in applied.text
    engine = _engine(seeded_dir)
    try:
        assert [backup.id for backup in engine.vault.list()] == [done["backup"]]
        assert store.get(engine.db, summary["plan_id"]).applied_by == "runbook"
    finally:
        engine.close()
    assert len(_plans(seeded_dir)) == 1  # no second plan: it applied the one it was given

    again = run_notebook(
        "take_backup.ipynb",
        tmp_path,
        data_dir=str(seeded_dir),
        plan_id=summary["plan_id"],
        dry_run=False,
        confirm="take a backup",
    )
    assert "is applied; it cannot be applied" in summary_of_run(again)["error"]


def test_the_unattended_form_stops_plainly_when_approval_is_required(
    seeded_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAMEY_APPROVALS", "backup")
    before = fingerprint(seeded_dir)
    run = run_notebook(
        "take_backup.ipynb", tmp_path, data_dir=str(seeded_dir), dry_run=False, confirm="take a backup"
    )
    summary = summary_of_run(run)
    assert summary["plan_status"] == "pending_approval" and summary["outcome"] == "pending_approval"
    assert summary["error"] is None and summary["backup"] is None
    assert f"Plan {summary['plan_id']} needs approval by a second key before it can be applied" in run.text
    assert f"jamey plans approve {summary['plan_id']}" in run.text
    assert fingerprint(seeded_dir) == before


def test_a_wrong_confirm_refuses_and_changes_nothing(seeded_dir: Path, tmp_path: Path) -> None:
    before = fingerprint(seeded_dir)
    run = run_notebook(
        "take_backup.ipynb", tmp_path, data_dir=str(seeded_dir), dry_run=False, confirm="back it up"
    )
    assert "Refused: confirm is 'back it up', but this plan needs exactly 'take a backup'." in run.text
    assert summary_of_run(run)["outcome"] == "refused"
    assert fingerprint(seeded_dir) == before


def test_a_backup_dir_that_cannot_be_written_stops_at_preflight(
    seeded_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the backup directory's parent should be")
    monkeypatch.setenv("JAMEY_BACKUP_DIR", str(blocked / "backups"))
    run = run_notebook(
        "take_backup.ipynb", tmp_path, data_dir=str(seeded_dir), dry_run=False, confirm="take a backup"
    )
    assert "Preflight failed." in run.text
    assert "error: preflight failed (backup directory" in run.text
    assert "Skipped apply" in run.text
    assert summary_of_run(run)["plan_id"] is None


def test_flush_memory_log_unattended_flushes_through_a_plan(seeded_dir: Path, tmp_path: Path) -> None:
    phrase = "flush the write-ahead log of working"
    run = run_notebook(
        "flush_memory_log.ipynb",
        tmp_path,
        data_dir=str(seeded_dir),
        layer="working",
        dry_run=False,
        confirm=phrase,
    )
    summary = summary_of_run(run)
    assert summary["plan_status"] == "applied" and summary["verified"] is True, run.text
    assert summary["confirm_phrase"] == phrase
    assert set(summary["result"]["flushed_records"]) == {"working"}
    assert counts(seeded_dir)["working"] == OLD_PER_LAYER + NEW_PER_LAYER


def test_apply_retention_plans_what_each_policy_deletes_and_applies_it(
    seeded_dir: Path, tmp_path: Path
) -> None:
    engine = _engine(seeded_dir)
    try:
        engine.retention.set("working", max_age=timedelta(days=30), actor="test")
    finally:
        engine.close()
    phrase = f"apply retention deleting {OLD_PER_LAYER} memories"
    dry = run_notebook("apply_retention.ipynb", tmp_path, data_dir=str(seeded_dir))
    summary = summary_of_run(dry)
    assert summary["confirm_phrase"] == phrase and summary["outcome"] == "dry_run", dry.text
    assert counts(seeded_dir)["working"] == OLD_PER_LAYER + NEW_PER_LAYER

    applied = run_notebook(
        "apply_retention.ipynb",
        tmp_path,
        data_dir=str(seeded_dir),
        plan_id=summary["plan_id"],
        dry_run=False,
        confirm=phrase,
    )
    done = summary_of_run(applied)
    assert done["plan_status"] == "applied" and done["verified"] is True, applied.text
    assert done["backup"]  # retention is backup-first
    assert counts(seeded_dir)["working"] == NEW_PER_LAYER


def test_rotate_key_plans_the_rotation_and_leaves_the_apply_to_a_door_that_shows_the_secret(
    seeded_dir: Path, tmp_path: Path
) -> None:
    engine = _engine(seeded_dir)
    try:
        key = engine.keys.create("billing", scopes=("memory:read",))
    finally:
        engine.close()
    before = fingerprint(seeded_dir)
    run = run_notebook(
        "rotate_key.ipynb",
        tmp_path,
        data_dir=str(seeded_dir),
        key_id=key.id,
        dry_run=False,
        confirm="rotate key billing",
    )
    summary = summary_of_run(run)
    assert summary["confirm_phrase"] == "rotate key billing" and summary["plan_status"] == "planned"
    assert summary["outcome"] == "refused" and summary["error"] is None
    assert f"jamey plans apply {summary['plan_id']} --confirm 'rotate key billing'" in run.text
    assert fingerprint(seeded_dir) == before
    assert key.key not in run.path.read_text()


def test_rotate_key_without_a_key_id_is_a_plain_message(seeded_dir: Path, tmp_path: Path) -> None:
    run = run_notebook("rotate_key.ipynb", tmp_path, data_dir=str(seeded_dir))
    assert "error: parameter 'key_id' of key-rotate is required" in run.text
    assert "Skipped preflight" in run.text
