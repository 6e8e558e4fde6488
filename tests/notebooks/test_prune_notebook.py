"""notebooks/prune_memories.ipynb under papermill: dry run, wrong confirm, apply, second apply."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from notebook_runner import Executed, counts, fingerprint, run_notebook
from seed_data import NEW_PER_LAYER, OLD_PER_LAYER, SEEDED_LAYERS

from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.oplog import operation_summary
from jamey_engine.runbooks.runner import summary_of

# Each test starts a kernel (2-3 s) per notebook run.
pytestmark = pytest.mark.slow

NOTEBOOK = "prune_memories.ipynb"
PHRASE = f"prune {OLD_PER_LAYER * len(SEEDED_LAYERS)} memories older than 30d"


def test_a_dry_run_plans_states_the_phrase_and_changes_nothing(seeded_dir: Path, tmp_path: Path) -> None:
    before = fingerprint(seeded_dir)
    run = run_notebook(NOTEBOOK, tmp_path, data_dir=str(seeded_dir))
    assert "Preflight passed." in run.text
    assert f"To apply: dry_run=False and confirm={PHRASE!r}" in run.text
    assert "Dry run: nothing was changed." in run.text
    assert "Verified: nothing changed." in run.text
    assert fingerprint(seeded_dir) == before


def test_a_wrong_confirm_refuses_and_changes_nothing(seeded_dir: Path, tmp_path: Path) -> None:
    before = fingerprint(seeded_dir)
    run = run_notebook(NOTEBOOK, tmp_path, data_dir=str(seeded_dir), dry_run=False, confirm="prune them all")
    assert f"Refused: confirm is 'prune them all', but this plan needs exactly {PHRASE!r}." in run.text
    assert "Summary: Refused" in run.text
    assert fingerprint(seeded_dir) == before


def test_apply_prunes_backs_up_verifies_and_a_second_apply_is_a_noop(
    seeded_dir: Path, tmp_path: Path
) -> None:
    run = run_notebook(NOTEBOOK, tmp_path, data_dir=str(seeded_dir), dry_run=False, confirm=PHRASE)
    assert f"Confirmed: {PHRASE!r}." in run.text
    assert "Backup taken first:" in run.text
    assert "Verified." in run.text
    assert "Summary: pruned 8 memories older than 30d after backup" in run.text
    after = counts(seeded_dir)
    assert {layer: after[layer] for layer in SEEDED_LAYERS} == dict.fromkeys(SEEDED_LAYERS, NEW_PER_LAYER)
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(seeded_dir)}))
    try:
        backups = engine.vault.list()
        assert [b.documents["working"] for b in backups] == [OLD_PER_LAYER + NEW_PER_LAYER]
        assert operation_summary(engine.db).pruned_documents["working"] == OLD_PER_LAYER
    finally:
        engine.close()

    settled = fingerprint(seeded_dir)
    again = run_notebook(NOTEBOOK, tmp_path, data_dir=str(seeded_dir), dry_run=False, confirm=PHRASE)
    assert "Nothing to prune." in again.text
    assert "Nothing to do: no memory in" in again.text
    assert "Backup taken first" not in again.text
    assert fingerprint(seeded_dir) == settled


def test_a_bad_layer_is_a_plain_message_not_a_traceback(seeded_dir: Path, tmp_path: Path) -> None:
    run = run_notebook(NOTEBOOK, tmp_path, data_dir=str(seeded_dir), layer="workng")
    assert "error: layer 'workng' is not a layer; use all or one of:" in run.text
    assert "Skipped preflight" in run.text


def test_a_writer_holding_the_lock_stops_it_at_preflight(seeded_dir: Path, tmp_path: Path) -> None:
    before = fingerprint(seeded_dir)
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(seeded_dir)}))
    try:
        with engine.memory.generations.shared("a long import in another process"):
            run = run_notebook(NOTEBOOK, tmp_path, data_dir=str(seeded_dir), dry_run=False, confirm=PHRASE)
    finally:
        engine.close()
    assert "Preflight failed." in run.text
    assert "error: preflight failed (writer lock: not free within 2s" in run.text
    assert "Skipped apply" in run.text
    assert fingerprint(seeded_dir) == before


def _summary(run: Executed) -> dict[str, Any]:
    found = summary_of(run.notebook)
    assert found is not None, run.text
    return found


def test_a_dry_run_stores_the_plan_and_the_applying_run_applies_exactly_that_plan(
    seeded_dir: Path, tmp_path: Path
) -> None:
    dry = _summary(run_notebook(NOTEBOOK, tmp_path, data_dir=str(seeded_dir), layer="working"))
    assert dry["confirm_phrase"] == f"prune {OLD_PER_LAYER} memories older than 30d"
    assert dry["plan_id"] and dry["plan_status"] == "planned" and dry["outcome"] == "dry_run"
    # The notebook's own layer and period are replaced by the plan's.
    run = run_notebook(
        NOTEBOOK,
        tmp_path,
        data_dir=str(seeded_dir),
        layer="episodic",
        older_than="1d",
        plan_id=dry["plan_id"],
        dry_run=False,
        confirm=dry["confirm_phrase"],
    )
    done = _summary(run)
    assert f"Plan {dry['plan_id']} (planned), planned by runbook: its parameters are used." in run.text
    assert (done["plan_id"], done["plan_status"], done["deleted"]) == (
        dry["plan_id"],
        "applied",
        OLD_PER_LAYER,
    )
    after = counts(seeded_dir)
    assert (after["working"], after["episodic"]) == (NEW_PER_LAYER, OLD_PER_LAYER + NEW_PER_LAYER)


def test_a_plan_applied_after_the_world_moved_is_refused_as_stale(seeded_dir: Path, tmp_path: Path) -> None:
    dry = _summary(run_notebook(NOTEBOOK, tmp_path, data_dir=str(seeded_dir), layer="working"))
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(seeded_dir)}))
    try:
        old = utcnow() - timedelta(days=90)
        engine.memory.store_batch("working", [{"content": "a late old memory", "timestamp": old}])
        engine.memory.flush()
    finally:
        engine.close()
    before = fingerprint(seeded_dir)
    run = run_notebook(
        NOTEBOOK,
        tmp_path,
        data_dir=str(seeded_dir),
        plan_id=dry["plan_id"],
        dry_run=False,
        confirm=dry["confirm_phrase"],
    )
    done = _summary(run)
    assert f"plan {dry['plan_id']} is stale" in done["error"] and "plan again" in done["error"]
    assert done["plan_status"] == "stale"
    assert fingerprint(seeded_dir) == before


def test_the_unattended_form_stops_plainly_when_the_prune_needs_approval(
    seeded_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAMEY_APPROVALS", "prune")
    before = fingerprint(seeded_dir)
    run = run_notebook(NOTEBOOK, tmp_path, data_dir=str(seeded_dir), dry_run=False, confirm=PHRASE)
    done = _summary(run)
    assert (done["plan_status"], done["outcome"], done["error"]) == (
        "pending_approval",
        "pending_approval",
        None,
    )
    assert f"Plan {done['plan_id']} needs approval by a second key before it can be applied" in run.text
    assert "Backup taken first" not in run.text
    assert fingerprint(seeded_dir) == before
