"""``jamey memory retention`` through click's runner: show, set, clear, plan, apply; bad input is one line."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jamey_engine.cli import cli
from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.memory import LAYERS
from jamey_engine.oplog import recent_operations

Run = Callable[..., Result]


@pytest.fixture
def run(data_dir: Path) -> Run:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--data-dir", str(data_dir), "memory", "retention", *args])

    return invoke


def _engine(data_dir: Path) -> Engine:
    return Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))


def test_show_lists_every_layer_with_nulls_until_set(run: Run) -> None:
    shown = run("show", "--json")
    assert shown.exit_code == 0, shown.output
    policies: dict[str, Any] = json.loads(shown.stdout)
    assert list(policies) == list(LAYERS)
    assert all(p["max_age"] is None and p["max_bytes"] is None for p in policies.values())
    assert run("set", "--layer", "working", "--max-age", "30d").exit_code == 0
    assert run("set", "--layer", "working", "--max-bytes", "1GiB").exit_code == 0
    working = json.loads(run("show", "--json").stdout)["working"]
    assert (working["max_age"], working["max_bytes"], working["set_by"]) == ("30d", 1024**3, "cli")
    cleared = run("clear", "--layer", "working", "--max-age", "--json")
    assert cleared.exit_code == 0, cleared.output
    assert json.loads(cleared.stdout)["working"]["max_age"] is None
    assert json.loads(cleared.stdout)["working"]["max_bytes"] == 1024**3


def test_plan_changes_nothing_and_apply_removes_and_records(run: Run, data_dir: Path) -> None:
    engine = _engine(data_dir)
    now = utcnow()
    engine.memory.store_batch(
        "episodic", [{"content": f"e {i}", "timestamp": now - timedelta(days=i * 20 + 1)} for i in range(5)]
    )
    engine.close()
    assert run("set", "--layer", "episodic", "--max-age", "30d").exit_code == 0
    planned = run("plan", "--json")
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planned.stdout)["episodic"]
    assert plan["memories"] == 3 and plan["cutoff"] and plan["dry_run"] is True
    applied = run("apply", "--json", "--yes")
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["episodic"]["memories"] == 3
    engine = _engine(data_dir)
    try:
        assert engine.memory.count("episodic") == 2
        assert {row["actor"] for row in recent_operations(engine.db, kind="retention")} == {"cli"}
        assert engine.retention.audit()[0]["actor"] == "cli"
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "--layer", "nope", "--max-age", "30d"), "error: layer 'nope' is not one of"),
        (
            ("set", "--layer", "working", "--max-age", "59m"),
            "error: max_age '59m' is under the minimum of 1h",
        ),
        (("set", "--layer", "working", "--max-bytes", "1MB"), "error: max_bytes '1MB' is under the minimum"),
        (("set", "--layer", "working", "--max-age", "a month"), "error: max_age 'a month' is not a duration"),
        (("set", "--layer", "working", "--max-bytes", "big"), "error: max_bytes 'big' is not a size"),
        (("set", "--layer", "working"), "error: give max_age, max_bytes or both"),
        (("clear", "--layer", "nope"), "error: layer 'nope' is not one of"),
    ],
)
def test_bad_input_is_one_line_exit_two_and_changes_nothing(
    run: Run, data_dir: Path, args: tuple[str, ...], message: str
) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    shown = json.loads(run("show", "--json").stdout)
    assert all(p["max_age"] is None and p["max_bytes"] is None for p in shown.values())
