"""notebooks/prune_memories.ipynb under papermill: dry run, wrong confirm, apply, second apply."""

from __future__ import annotations

from pathlib import Path

import pytest
from notebook_runner import counts, fingerprint, run_notebook
from seed_data import NEW_PER_LAYER, OLD_PER_LAYER, SEEDED_LAYERS

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.oplog import operation_summary

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
