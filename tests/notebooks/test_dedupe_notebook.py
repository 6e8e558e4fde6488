"""notebooks/dedupe_memories.ipynb under papermill: dry run, wrong confirm, apply, second apply, bad input."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from notebook_runner import counts, fingerprint, run_notebook
from seed_data import NEW_PER_LAYER, OLD_PER_LAYER, seed

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.oplog import recent_operations

pytestmark = pytest.mark.slow

NOTEBOOK = "dedupe_memories.ipynb"
PHRASE = "dedupe 4 duplicate memories in working"


@pytest.fixture
def duplicated_dir(tmp_path: Path) -> Iterator[Path]:
    """The seeded data dir plus, in working, one text four times and another twice (4 repeats)."""
    data_dir = tmp_path / "data"
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        seed(engine)
        texts = ["Disk full on node 3", "disk FULL on  node 3", "DISK full on node 3", "disk full on node 3 "]
        engine.memory.store_batch(
            "working",
            [(text, f"2026-01-0{i + 1}T00:00:00Z") for i, text in enumerate(texts)]
            + [("cache miss storm", "2026-01-05T00:00:00Z"), ("Cache miss storm", "2026-01-06T00:00:00Z")],
        )
    finally:
        engine.close()
    yield data_dir


def _summary(text: str) -> dict[str, object]:
    """The summary dict the last cell shows."""
    start = text.rindex("{'layers'")
    return dict(ast.literal_eval(text[start:]))


def test_a_dry_run_shows_the_groups_states_the_phrase_and_changes_nothing(
    duplicated_dir: Path, tmp_path: Path
) -> None:
    before = fingerprint(duplicated_dir)
    run = run_notebook(NOTEBOOK, tmp_path, data_dir=str(duplicated_dir), layer="working")
    assert "Preflight passed." in run.text
    assert "Would delete 4 duplicate memories in 2 groups" in run.text
    assert f"To apply: dry_run=False and confirm={PHRASE!r}" in run.text
    assert "Dry run: nothing was changed." in run.text
    summary = _summary(run.text)
    assert summary["confirm_phrase"] == PHRASE
    assert (summary["outcome"], summary["duplicates"], summary["groups"]) == ("dry_run", 4, 2)
    assert fingerprint(duplicated_dir) == before


def test_a_wrong_confirm_refuses_and_changes_nothing(duplicated_dir: Path, tmp_path: Path) -> None:
    before = fingerprint(duplicated_dir)
    run = run_notebook(
        NOTEBOOK, tmp_path, data_dir=str(duplicated_dir), layer="working", dry_run=False, confirm="dedupe it"
    )
    assert f"Refused: confirm is 'dedupe it', but this plan needs exactly {PHRASE!r}." in run.text
    assert fingerprint(duplicated_dir) == before


def test_apply_backs_up_keeps_the_oldest_verifies_and_a_second_apply_is_a_noop(
    duplicated_dir: Path, tmp_path: Path
) -> None:
    run = run_notebook(
        NOTEBOOK, tmp_path, data_dir=str(duplicated_dir), layer="working", dry_run=False, confirm=PHRASE
    )
    assert "Backup taken first:" in run.text
    assert "Deleted 4 duplicate memories" in run.text
    assert "Verified." in run.text
    summary = _summary(run.text)
    assert (summary["outcome"], summary["deleted"], summary["verified"]) == ("applied", 4, True)
    assert counts(duplicated_dir)["working"] == OLD_PER_LAYER + NEW_PER_LAYER + 2
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(duplicated_dir)}))
    try:
        left = engine.analysis.memories_frame("working", query="disk OR cache")["content"].tolist()
        assert left == ["Disk full on node 3", "cache miss storm"]  # the oldest of each group
        assert [
            (r["layer"], r["count"], r["actor"]) for r in recent_operations(engine.db, kind="dedupe")
        ] == [("working", 4, "runbook")]
        assert len(engine.vault.list()) == 1
    finally:
        engine.close()
    settled = fingerprint(duplicated_dir)
    again = run_notebook(
        NOTEBOOK, tmp_path, data_dir=str(duplicated_dir), layer="working", dry_run=False, confirm=PHRASE
    )
    assert "No duplicates." in again.text and "Nothing to do: no duplicate memories in working." in again.text
    assert fingerprint(duplicated_dir) == settled


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"layer": "workng"}, "error: layer 'workng' is not a layer; use all or one of:"),
        ({"dry_run": "no"}, "error: dry_run 'no' must be True or False"),
    ],
)
def test_bad_parameters_are_one_plain_line(
    duplicated_dir: Path, tmp_path: Path, parameters: dict[str, object], message: str
) -> None:
    run = run_notebook(NOTEBOOK, tmp_path, data_dir=str(duplicated_dir), **parameters)
    assert message in run.text
    assert "Skipped preflight" in run.text
    assert _summary(run.text)["error"]
