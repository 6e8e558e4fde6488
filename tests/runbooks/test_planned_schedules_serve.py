"""Schedules of data-changing runbooks in a real `jamey serve`: each scheduled run plans through
the plan contract and applies only when no approval is required; when one is, the plan waits in
``pending_approval`` and the schedule's ``last_status`` says so.

The schedules are added with the CLI (another process); the runs are the repository's notebooks
in real kernels, started by the service's schedule loop. Each schedule's slot is made one already
passed (as after a restart), so it runs at the loop's next pass, and its cron's next real slot is
a year away: no later run can join the one under test. (The two are added one after the other:
data-changing runs go one at a time, and a slot that finds another running is skipped.)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from service.service_support import RunningServer, make_due, start_server, stop_server

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.plans import store
from jamey_engine.runbooks import runs
from jamey_engine.runbooks.links import REPO_NOTEBOOKS

pytestmark = pytest.mark.slow

DEADLINE = 240.0  # a kernel on a loaded 2-core machine
YEARLY = "0 0 1 1 *"


def _add(server: RunningServer, engine: Engine, runbook: str) -> dict[str, object]:
    result = server.jamey(
        "runbook", "schedule", "add", runbook, "--cron", YEARLY, "-p", "dry_run", "false", "--json"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    added = dict(json.loads(result.stdout))
    make_due(engine, added["id"])
    return added


def _first_run(engine: Engine, server: RunningServer, runbook: str) -> runs.RunRecord:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = [run for run in runs.list_runs(engine.db, limit=100) if run.runbook == runbook]
        if found and not found[-1].active:
            return found[-1]
        time.sleep(0.5)
    raise AssertionError(f"no finished scheduled run of {runbook} in {DEADLINE}s:\n{server.log()[-3000:]}")


def _listed(server: RunningServer, schedule_id: object) -> dict[str, object]:
    listed = server.jamey("runbook", "schedule", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return dict(next(row for row in json.loads(listed.stdout) if row["id"] == schedule_id))


def test_a_scheduled_change_plans_and_applies_or_waits_for_approval(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = start_server(
        data_dir,
        tmp_path / "serve.log",
        JAMEY_NOTEBOOKS_DIR=str(REPO_NOTEBOOKS),
        JAMEY_APPROVALS="memory-flush",  # a flush needs a second key; a backup does not
        JAMEY_BACKUP_INTERVAL="",
    )
    engine = Engine(Settings.from_env(server.env))
    try:
        # No approval required: the run plans, applies its own plan, and the backup exists.
        backup_schedule = _add(server, engine, "take_backup")
        run = _first_run(engine, server, "take_backup")
        assert run.status == "succeeded" and run.actor == "schedule", (run.error, server.log()[-2000:])
        assert run.summary is not None
        assert run.summary["plan_status"] == "applied" and run.summary["verified"] is True, run.summary
        assert run.summary["schedule"] == backup_schedule["id"]
        plan = store.get(engine.db, str(run.summary["plan_id"]))
        assert (plan.planned_by, plan.applied_by, plan.status) == ("schedule", "schedule", "applied")
        assert [backup.id for backup in engine.vault.list()] == [run.summary["backup"]]
        assert _listed(server, backup_schedule["id"])["last_status"] == "succeeded"

        # Approval required: the run plans, the plan waits, the schedule says so; nothing flushed.
        flush_schedule = _add(server, engine, "flush_memory_log")
        waiting = _first_run(engine, server, "flush_memory_log")
        assert waiting.status == "succeeded", (waiting.error, server.log()[-2000:])
        assert waiting.summary is not None and waiting.summary["plan_status"] == "pending_approval"
        assert waiting.summary["outcome"] == "pending_approval" and waiting.summary["result"] is None
        pending = store.get(engine.db, str(waiting.summary["plan_id"]))
        assert (pending.status, pending.planned_by, pending.applied_by) == (
            "pending_approval",
            "schedule",
            None,
        )
        assert _listed(server, flush_schedule["id"])["last_status"] == "pending_approval"
        assert [p.id for p in store.list_plans(engine.db, status="pending_approval")] == [pending.id]
    finally:
        stop_server(server)
        engine.close()
