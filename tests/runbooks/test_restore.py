"""The restore runbook on real backups: choose, verify, diff, refuse, restore, verify."""

from __future__ import annotations

from pathlib import Path

import pytest
from seed_data import NEW_PER_LAYER, OLD_PER_LAYER, Lines

from jamey_engine.engine import Engine
from jamey_engine.errors import NotFound
from jamey_engine.runbooks import RestoreRunbook, apply_restore, choose_backup, plan_restore, verify_restore


def _counts(engine: Engine) -> dict[str, int]:
    return {layer: size.documents for layer, size in engine.memory.sizes().layers.items()}


def flip_a_byte(path: Path, offset_from_middle: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 + offset_from_middle] ^= 0xFF
    path.write_bytes(bytes(data))


def test_choose_backup_without_backups_says_how_to_take_one(seeded: Engine) -> None:
    with pytest.raises(NotFound, match="jamey backup create"):
        choose_backup(seeded, "")


def test_empty_backup_id_chooses_the_latest(seeded: Engine) -> None:
    seeded.vault.create()
    second = seeded.vault.create()
    assert choose_backup(seeded, "").id == second.id


def test_restore_plan_diffs_the_backup_against_now(seeded: Engine) -> None:
    backup = seeded.vault.create()
    seeded.memory.store("working", "written after the backup")
    plan = plan_restore(seeded, backup.id)
    assert plan.verified and plan.phrase == f"restore {backup.id}"
    frame = plan.to_frame().set_index("what")
    assert frame.loc["working", "now"] == OLD_PER_LAYER + NEW_PER_LAYER + 1
    assert frame.loc["working", "change"] == -1
    assert frame.loc["keys", "change"] == 0


def test_dry_run_and_wrong_confirm_change_nothing(seeded: Engine) -> None:
    backup = seeded.vault.create()
    seeded.memory.store("working", "written after the backup")
    before = _counts(seeded)
    plan = plan_restore(seeded, backup.id)
    assert apply_restore(seeded, plan, dry_run=True, confirm=plan.phrase).decision.verdict == "dry_run"
    refused = apply_restore(seeded, plan, dry_run=False, confirm="restore latest")
    assert refused.decision.verdict == "refused"
    assert _counts(seeded) == before
    assert verify_restore(seeded, refused).ok
    assert len(seeded.vault.list()) == 1


def test_confirmed_restore_takes_a_safety_backup_and_matches_the_backup(seeded: Engine) -> None:
    backup = seeded.vault.create()
    seeded.memory.store("working", "written after the backup")
    plan = plan_restore(seeded, backup.id)
    outcome = apply_restore(seeded, plan, dry_run=False, confirm=plan.phrase)
    assert outcome.applied and len(outcome.safety_backups) == 1
    assert _counts(seeded)["working"] == OLD_PER_LAYER + NEW_PER_LAYER
    assert verify_restore(seeded, outcome).ok
    safety = seeded.vault.get(outcome.safety_backups[0])
    assert safety.documents["working"] == OLD_PER_LAYER + NEW_PER_LAYER + 1


def test_a_damaged_backup_is_named_and_refused(seeded: Engine) -> None:
    backup = seeded.vault.create()
    seeded.memory.store("working", "written after the backup")
    before = _counts(seeded)
    flip_a_byte(backup.path)
    plan = plan_restore(seeded, backup.id)
    assert not plan.verified and plan.problem
    outcome = apply_restore(seeded, plan, dry_run=False, confirm=plan.phrase)
    assert outcome.decision.verdict == "refused"
    assert f"backup {backup.id} is damaged" in outcome.decision.message
    assert _counts(seeded) == before


def test_the_notebook_runbook_reports_a_missing_backup_plainly(seeded_dir: Path) -> None:
    lines = Lines()
    runbook = RestoreRunbook.open(data_dir=seeded_dir, say=lines)
    assert runbook.backups() is not None
    assert runbook.plan() is None
    runbook.apply()
    facts = runbook.summary()
    runbook.close()
    assert "error: there are no backups in" in lines.text
    assert facts["outcome"] is None and facts["error"]


def test_the_dry_run_summary_names_the_confirm_phrase(seeded: Engine, seeded_dir: Path) -> None:
    backup = seeded.vault.create()
    seeded.close()
    runbook = RestoreRunbook.open(data_dir=seeded_dir, say=Lines())
    runbook.plan()
    runbook.apply()
    facts = runbook.summary()
    runbook.close()
    assert facts["dry_run"] is True and facts["outcome"] == "dry_run"
    assert facts["confirm_phrase"] == f"restore {backup.id}"
