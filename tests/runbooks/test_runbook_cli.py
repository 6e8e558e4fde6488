"""``jamey runbook`` end to end: the real prune notebook through the CLI, a real kernel and database."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from notebook_runner import counts, fingerprint
from seed_data import NEW_PER_LAYER

from jamey_engine.cli import cli
from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.memory import LAYERS


def _data(data_dir: Path) -> dict[str, str]:
    """The fingerprint without the operation log, which records every run by design."""
    return {name: digest for name, digest in fingerprint(data_dir).items() if name != "table operations"}


@pytest.fixture
def jamey(seeded_dir: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--data-dir", str(seeded_dir), "runbook", *args])

    return invoke


OLD_BULK = 2000  # enough old memories that pruning them frees more than a rewrite costs


def _add_old_memories(data_dir: Path) -> None:
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        old = utcnow() - timedelta(days=90)
        engine.memory.store_batch(
            "episodic",
            [
                {"content": f"old incident {i} " + "lorem ipsum " * 20, "timestamp": old}
                for i in range(OLD_BULK)
            ],
        )
        for layer in LAYERS:  # the write-ahead log into the indexes, so "before" is what stays
            engine.memory.flush_layer(layer)
    finally:
        engine.close()


def _episodic_bytes(data_dir: Path) -> int:
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        return engine.memory.sizes().layers["episodic"].bytes
    finally:
        engine.close()


def test_list_and_show_name_the_runbooks_and_their_parameters(jamey) -> None:  # type: ignore[no-untyped-def]
    listed = jamey("list", "--json")
    assert listed.exit_code == 0, listed.output
    by_name = {item["name"]: item for item in json.loads(listed.stdout)}
    assert by_name["prune_memories"]["kind"] == "runbook"
    assert by_name["memory_growth"]["kind"] == "analysis"
    first = by_name["prune_memories"]["parameters"][0]
    assert set(first) == {"name", "type", "default", "help"}
    shown = jamey("show", "restore_backup")
    assert shown.exit_code == 0, shown.output
    assert "backup_id" in shown.stdout and "empty: the latest backup" in shown.stdout
    missing = jamey("show", "nope")
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: runbook 'nope' does not exist; the runbooks are:")


def test_listing_the_runbooks_prints_no_papermill_lines(tmp_path: Path) -> None:
    """Seen before: one "INFO papermill: Input Notebook: ..." line per notebook on stderr."""
    import subprocess
    import sys

    listed = subprocess.run(
        [sys.executable, "-m", "jamey_engine", "--data-dir", str(tmp_path), "runbook", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)
    assert "papermill" not in listed.stderr, listed.stderr


def test_list_json_names_each_runbooks_scope_and_the_plan_action_it_applies(tmp_path: Path) -> None:
    from jamey_engine.plans.actions import get_action

    listed = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "runbook", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    by_name = {item["name"]: item for item in json.loads(listed.stdout)}
    facts = {name: (item["scope"], item["plan_action"]) for name, item in by_name.items()}
    assert facts["restore_backup"] == ("admin", "restore")
    assert facts["prune_memories"] == ("ops:write", "prune")
    assert facts["rotate_key"] == ("admin", "key-rotate")
    assert facts["memory_growth"] == ("ops:write", None)
    for name, item in by_name.items():
        if item["kind"] == "analysis":
            assert item["plan_action"] is None, name
        else:  # a runbook that changes data does so through a plan, and needs that plan's scope
            assert item["plan_action"] is not None, name
            assert item["scope"] == get_action(item["plan_action"]).scope, name


def test_prune_dry_run_changes_nothing_and_the_apply_with_its_phrase_prunes_and_frees_disk(
    jamey,  # type: ignore[no-untyped-def]
    seeded_dir: Path,
) -> None:
    _add_old_memories(seeded_dir)
    before, size_before = _data(seeded_dir), _episodic_bytes(seeded_dir)
    dry = jamey("run", "prune_memories", "-p", "layer", "episodic", "-p", "older_than", "30d", "--json")
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.stdout)
    assert planned["status"] == "succeeded" and planned["summary"]["dry_run"] is True
    phrase = planned["summary"]["confirm_phrase"]
    assert phrase.startswith(f"prune {OLD_BULK + 4} memories older than 30d")
    assert Path(planned["notebook"]).is_file() and Path(planned["html"]).is_file()
    assert _data(seeded_dir) == before

    applied = jamey(
        "run",
        "prune_memories",
        "-p",
        "layer",
        "episodic",
        "-p",
        "dry_run",
        "false",
        "-p",
        "confirm",
        phrase,
        "--json",
    )
    assert applied.exit_code == 0, applied.output
    summary = json.loads(applied.stdout)["summary"]
    assert (
        summary["outcome"] == "applied" and summary["deleted"] == OLD_BULK + 4 and summary["verified"] is True
    )
    assert counts(seeded_dir)["episodic"] == NEW_PER_LAYER
    assert _episodic_bytes(seeded_dir) < size_before / 2

    history = jamey("runs", "--runbook", "prune_memories", "--json")
    assert history.exit_code == 0, history.output
    rows = json.loads(history.stdout)
    assert [row["parameters"].get("dry_run") for row in rows] == [False, None]
    assert {"id", "runbook", "status", "actor", "parameters", "started_at", "finished_at"} <= set(rows[0])
    assert rows[0]["actor"] == "cli" and rows[0]["status"] == "succeeded"


def test_a_failed_run_exits_non_zero_with_its_error_in_one_line(jamey) -> None:  # type: ignore[no-untyped-def]
    result = jamey("run", "prune_memories", "-p", "older_than", "banana")
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith("error: run ") and "failed: older_than 'banana' is not a duration" in lines[0]


def test_a_bad_parameter_exits_2_and_records_no_run(jamey) -> None:  # type: ignore[no-untyped-def]
    result = jamey("run", "prune_memories", "-p", "dry_run", "maybe")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == "error: parameter dry_run 'maybe' must be true or false"
    history = jamey("runs", "--json")
    assert json.loads(history.stdout) == []


def test_cancel_of_an_unknown_run_is_one_line(jamey) -> None:  # type: ignore[no-untyped-def]
    result = jamey("cancel", "20260101T000000Z-000000")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: runbook run '20260101T000000Z-000000' does not exist"
