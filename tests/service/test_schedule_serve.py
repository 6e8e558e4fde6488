"""Runbook schedules run by a real `jamey serve`: once per slot across two workers, a missed slot
once after a restart, the outcome on /metrics, and a failing scheduled run firing
JameyRunbookFailed in a real Prometheus with the project's rules.

The schedules are added with the CLI (another process) and the runs are real notebooks in real
kernels. Each test waits, with a deadline, for the runs it expects to exist, then counts them.
A run that needs no real slot starts from a slot already passed (``make_due``: as after a
restart), so the suite waits for the clock only where the minute boundary is the point.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from helpers import REDIS_URL, wait_until
from notebook_factory import make_test_notebooks
from promserver import launch_prometheus, prometheus_config
from service_support import RunningServer, make_due, start_server, stop_server

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.runbooks import runs, schedules

pytestmark = pytest.mark.slow

DEADLINE = 240.0  # two one-minute slots and their kernels on a loaded 2-core machine
# A cron whose real slots are a year apart: the run under test is the one made due now.
YEARLY = "0 0 1 1 *"


def add_schedule(server: RunningServer, *args: str) -> dict[str, object]:
    result = server.jamey("runbook", "schedule", "add", *args, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(json.loads(result.stdout))


def scheduled_runs(engine: Engine) -> list[runs.RunRecord]:
    return [run for run in runs.list_runs(engine.db, limit=1000) if run.actor == "schedule"]


def wait_for_runs(engine: Engine, server: RunningServer, count: int) -> list[runs.RunRecord]:
    """The scheduled runs once ``count`` exist and all have finished (fails at the deadline)."""

    def finished() -> list[runs.RunRecord] | None:
        found = scheduled_runs(engine)
        return found if len(found) >= count and not any(run.active for run in found) else None

    try:
        done: list[runs.RunRecord] = wait_until(
            finished, DEADLINE, f"{count} finished scheduled runs", every=0.5
        )
    except AssertionError as failed:
        raise AssertionError(f"{failed}:\n{server.log()[-3000:]}") from None
    return done


def test_a_one_minute_schedule_runs_once_per_slot_across_two_workers(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    notebooks = make_test_notebooks(tmp_path / "notebooks")
    server = start_server(
        data_dir,
        tmp_path / "serve.log",
        JAMEY_WORKERS="2",
        JAMEY_RATE_LIMIT_STORAGE=REDIS_URL,
        JAMEY_NOTEBOOKS_DIR=str(notebooks),
    )
    engine = Engine(Settings.from_env(server.env))
    try:
        added = add_schedule(server, "ok", "--cron", "* * * * *", "-p", "repeat", "4")
        # The first slot has passed (both workers see it due at once); the second is the next
        # real minute boundary.
        make_due(engine, added["id"])
        found = wait_for_runs(engine, server, 2)
        slots = [run.created_at.replace(second=0, microsecond=0) for run in found]
        assert len(slots) == len(set(slots)), f"two runs in one slot: {[r.created_at for r in found]}"
        assert all(run.status == "succeeded" and run.parameters == {"repeat": 4} for run in found)
        # Both workers ran the whole time: only the lease holder started runs.
        assert server.process.poll() is None
        listed = server.jamey("runbook", "schedule", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        mine = next(row for row in json.loads(listed.stdout) if row["id"] == added["id"])
        assert mine["last_run_id"] in {run.id for run in found}
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert (
            f'runbook_schedule_last_success_timestamp_seconds{{runbook="ok",schedule="{added["id"]}"}}'
            in metrics
        )
        assert f'runbook_schedule_last_run_failed{{runbook="ok",schedule="{added["id"]}"}} 0.0' in metrics
    finally:
        stop_server(server)
        engine.close()


def test_a_missed_slot_runs_once_after_a_restart(serve: Callable[..., RunningServer], tmp_path: Path) -> None:
    notebooks = make_test_notebooks(tmp_path / "notebooks")
    server = serve(JAMEY_NOTEBOOKS_DIR=str(notebooks))
    engine = Engine(Settings.from_env(server.env))
    try:
        added = add_schedule(server, "ok", "--cron", "* * * * *")
        stop_server(server)
        # The service stays down over five slots: its next slot is five minutes gone.
        make_due(engine, added["id"], minutes_ago=5)
        restarted = start_server(
            server.data_dir, tmp_path / "restarted.log", JAMEY_NOTEBOOKS_DIR=str(notebooks)
        )
        try:
            first = wait_for_runs(engine, restarted, 1)[-1]
            after = schedules.get_schedule(engine.db, int(str(added["id"])))
            assert after.next_run_at is not None and after.next_run_at > first.created_at
            before_next = [run for run in scheduled_runs(engine) if run.created_at < after.next_run_at]
            assert [run.id for run in before_next] == [first.id]
        finally:
            stop_server(restarted)
    finally:
        engine.close()


def test_a_failing_scheduled_run_fires_jamey_runbook_failed_in_a_real_prometheus(
    serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    notebooks = make_test_notebooks(tmp_path / "notebooks")
    server = serve(JAMEY_NOTEBOOKS_DIR=str(notebooks))
    engine = Engine(Settings.from_env(server.env))
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    port = int(server.url.rsplit(":", 1)[1])
    url, process = launch_prometheus(workdir, prometheus_config(port, instance=None), workdir / "tsdb")
    try:
        added = add_schedule(server, "fails", "--cron", YEARLY)
        make_due(engine, added["id"])
        (run,) = wait_for_runs(engine, server, 1)
        assert (run.status, run.error) == ("failed", "ValueError: boom at 3")

        def firing() -> list[dict[str, object]]:
            answer = httpx.get(f"{url}/api/v1/alerts", timeout=10).json()
            return [
                alert
                for alert in answer["data"]["alerts"]
                if alert["labels"]["alertname"] == "JameyRunbookFailed" and alert["state"] == "firing"
            ]

        deadline = time.monotonic() + 60
        while not firing() and time.monotonic() < deadline:
            time.sleep(0.5)
        (alert,) = firing()
        assert alert["labels"]["schedule"] == str(added["id"]) and alert["labels"]["runbook"] == "fails"
        assert (
            alert["annotations"]["summary"]
            == f"The last scheduled run of fails (schedule {added['id']}) failed"
        )
    finally:
        process.terminate()
        process.wait(timeout=20)
        engine.close()
