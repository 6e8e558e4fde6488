"""notebooks/restore_backup.ipynb under papermill: dry run, wrong confirm, apply, damaged backup."""

from __future__ import annotations

from pathlib import Path

import pytest
from notebook_runner import counts, fingerprint, run_notebook
from seed_data import NEW_PER_LAYER, OLD_PER_LAYER

from jamey_engine.config import Settings
from jamey_engine.engine import Engine

# Each test starts a kernel (2-3 s) per notebook run.
pytestmark = pytest.mark.slow

NOTEBOOK = "restore_backup.ipynb"


def _backup_then_change(data_dir: Path) -> str:
    """Take a backup, then write one more memory so a restore has something to undo."""
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        backup = engine.vault.create()
        engine.memory.store("working", "written after the backup")
        return backup.id
    finally:
        engine.close()


def test_a_dry_run_lists_verifies_diffs_and_changes_nothing(seeded_dir: Path, tmp_path: Path) -> None:
    backup_id = _backup_then_change(seeded_dir)
    before = counts(seeded_dir)
    run = run_notebook(NOTEBOOK, tmp_path, data_dir=str(seeded_dir))
    assert "1 backup(s) in" in run.text
    assert "Verified: every file matches its checksum." in run.text
    assert f"To apply: dry_run=False and confirm='restore {backup_id}'" in run.text
    assert "Dry run: nothing was changed." in run.text
    assert counts(seeded_dir) == before


def test_a_wrong_confirm_refuses_and_changes_nothing(seeded_dir: Path, tmp_path: Path) -> None:
    _backup_then_change(seeded_dir)
    before = fingerprint(seeded_dir)
    run = run_notebook(NOTEBOOK, tmp_path, data_dir=str(seeded_dir), dry_run=False, confirm="restore it")
    assert "Refused: confirm is 'restore it'" in run.text
    assert fingerprint(seeded_dir) == before


def test_apply_takes_a_safety_backup_restores_and_verifies(seeded_dir: Path, tmp_path: Path) -> None:
    backup_id = _backup_then_change(seeded_dir)
    assert counts(seeded_dir)["working"] == OLD_PER_LAYER + NEW_PER_LAYER + 1
    phrase = f"restore {backup_id}"
    run = run_notebook(
        NOTEBOOK, tmp_path, data_dir=str(seeded_dir), backup_id=backup_id, dry_run=False, confirm=phrase
    )
    assert "Safety backup of the data before the restore:" in run.text
    assert "Verified: the data matches the backup." in run.text
    assert f"Summary: restored {backup_id}" in run.text
    restored = counts(seeded_dir)
    assert restored["working"] == OLD_PER_LAYER + NEW_PER_LAYER
    assert restored["keys"] == 1

    # The same run again restores the same state: the data ends up identical.
    again = run_notebook(
        NOTEBOOK, tmp_path, data_dir=str(seeded_dir), backup_id=backup_id, dry_run=False, confirm=phrase
    )
    assert "Verified: the data matches the backup." in again.text
    assert counts(seeded_dir) == restored


def test_the_latest_after_a_restore_is_the_safety_backup_so_an_old_phrase_refuses(
    seeded_dir: Path, tmp_path: Path
) -> None:
    backup_id = _backup_then_change(seeded_dir)
    phrase = f"restore {backup_id}"
    run_notebook(
        NOTEBOOK, tmp_path, data_dir=str(seeded_dir), backup_id=backup_id, dry_run=False, confirm=phrase
    )
    before = counts(seeded_dir)
    run = run_notebook(NOTEBOOK, tmp_path, data_dir=str(seeded_dir), dry_run=False, confirm=phrase)
    assert "Refused:" in run.text
    assert counts(seeded_dir) == before


def test_a_damaged_backup_is_named_and_the_restore_refuses(seeded_dir: Path, tmp_path: Path) -> None:
    backup_id = _backup_then_change(seeded_dir)
    archive = next((seeded_dir / "backups").glob(f"{backup_id}*.tar.zst"))
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    before = fingerprint(seeded_dir)
    run = run_notebook(
        NOTEBOOK,
        tmp_path,
        data_dir=str(seeded_dir),
        backup_id=backup_id,
        dry_run=False,
        confirm=f"restore {backup_id}",
    )
    assert "Verification FAILED" in run.text
    assert f"Refused: backup {backup_id} is damaged" in run.text
    assert "Nothing was changed." in run.text
    assert fingerprint(seeded_dir) == before
    assert counts(seeded_dir)["working"] == OLD_PER_LAYER + NEW_PER_LAYER + 1
