"""The runbook runner against real notebooks, a real kernel and a real database."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from helpers import REPO, make_settings, wait_until
from notebook_factory import make_test_notebooks

from jamey_engine.config import Settings, without_secrets
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.errors import Conflict, InvalidInput, NotFound
from jamey_engine.oplog import recent_operations
from jamey_engine.runbooks import launch, runs
from jamey_engine.runbooks.runs import RunRecord

DEADLINE = 180.0  # a loaded 2-core machine starts a kernel slowly


@pytest.fixture
def nb_dir(tmp_path: Path) -> Path:
    return make_test_notebooks(tmp_path / "notebooks")


@pytest.fixture
def run_engine(data_dir: Path, nb_dir: Path, database_url: str) -> Iterator[Engine]:
    """An engine on SQLite and on PostgreSQL, with the test notebooks as its catalog."""
    engine = Engine(make_settings(data_dir, JAMEY_NOTEBOOKS_DIR=str(nb_dir), JAMEY_DATABASE_URL=database_url))
    yield engine
    _stop_all(engine)
    engine.close()


@pytest.fixture
def sqlite_engine(data_dir: Path, nb_dir: Path) -> Iterator[Engine]:
    engine = Engine(make_settings(data_dir, JAMEY_NOTEBOOKS_DIR=str(nb_dir)))
    yield engine
    _stop_all(engine)
    engine.close()


def _stop_all(engine: Engine) -> None:
    for run in runs.list_runs(engine.db, limit=100):
        if run.status == "queued" and run.pid == os.getpid():
            # Recorded by this test (create_run claims it for its creator) and never given a
            # runner: nothing will ever take it, so a cancel would wait DEADLINE for nothing
            # (180 s of teardown each, three tests, in CI).
            runs.finish_if_active(engine.db, run.id, "cancelled", error="never started by the test")
        elif run.active:
            with contextlib.suppress(Conflict):
                launch.cancel_run(engine, run.id)
    for run in runs.list_runs(engine.db, limit=100):
        if run.active:
            launch.wait_for_run(engine, run.id, timeout=DEADLINE)


def run_runner(engine: Engine, run_id: str) -> subprocess.CompletedProcess[str]:
    """The runner process for ``run_id`` (as ``launch.start_run`` starts it), run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "jamey_engine.runbooks.runner", run_id],
        env=without_secrets({**os.environ, **engine.settings.to_environ()}),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )


def running_in(engine: Engine, run_id: str, cell: int) -> Callable[[], RunRecord | None]:
    def check() -> RunRecord | None:
        run = runs.get_run(engine.db, run_id)
        assert run.status in runs.ACTIVE, run
        return run if run.status == "running" and (run.cell_index or 0) >= cell else None

    return check


def test_the_catalog_lists_the_repository_notebooks_with_their_parameters(engine: Engine) -> None:
    catalog = launch.catalog(engine)
    assert {"prune_memories", "restore_backup", "memory_growth"} <= set(catalog)
    prune = catalog["prune_memories"]
    assert prune.kind == "runbook" and prune.title == "Runbook: prune old memories"
    assert prune.description.startswith("Use when `JameyMemoryIndexTooLarge` fires")
    params = {p.name: p.to_dict() for p in prune.parameters}
    assert params["dry_run"] == {
        "name": "dry_run",
        "type": "bool",
        "default": True,
        "help": "True: plan only, change nothing",
    }
    assert params["layer"]["default"] == "all" and params["layer"]["type"] == "str"
    assert "data_dir" not in params  # the runner sets it: a run acts on its own engine's data dir
    assert catalog["memory_growth"].kind == "analysis"
    assert catalog["memory_growth"].parameter("days") is not None
    assert catalog["memory_growth"].parameter("days").type == "int"  # type: ignore[union-attr]


def test_a_notebook_without_a_parameters_cell_is_not_a_runbook(sqlite_engine: Engine) -> None:
    catalog = launch.catalog(sqlite_engine)
    assert set(catalog) == {"ok", "fails", "slow", "slow_change"}
    assert catalog["slow_change"].kind == "runbook" and catalog["ok"].kind == "analysis"
    with pytest.raises(NotFound, match="runbook 'plain' does not exist; the runbooks are: fails, ok"):
        launch.runbook(sqlite_engine, "plain")


def test_a_run_that_succeeds_keeps_its_notebook_html_summary_and_record(run_engine: Engine) -> None:
    started = launch.start_run(run_engine, "ok", {"words": "x y", "repeat": "3"}, actor="alice")
    assert started.status == "queued" and started.parameters == {"words": "x y", "repeat": 3}
    seen: list[str] = []
    done = launch.wait_for_run(
        run_engine, started.id, on_progress=lambda r: seen.append(r.progress_text), timeout=DEADLINE
    )
    assert done.status == "succeeded", done
    assert done.summary == {"count": 6, "words": "x y"}
    assert seen[0] == "queued" and seen[-1] == "cell 4 of 4: Summary"
    assert done.cell_count == 4 and done.error is None and done.actor == "alice"
    assert done.started_at and done.finished_at and done.finished_at >= done.started_at
    data = done.to_dict(run_engine.settings)
    folder = Path(data["notebook"]).parent
    assert Path(data["notebook"]).is_file() and "counted 6" in Path(data["notebook"]).read_text()
    assert "counted 6" in Path(data["html"]).read_text()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(data["html"]).stat().st_mode) == 0o600
    ops = recent_operations(run_engine.db, kind="runbook")
    assert (
        ops[0]["status"] == "success" and ops[0]["actor"] == "alice" and started.id in str(ops[0]["detail"])
    )
    stats = runs.run_stats(run_engine.db)
    assert stats.counts[("ok", "succeeded")] == 1 and stats.last_duration_seconds["ok"] > 0
    assert [r.id for r in runs.list_runs(run_engine.db, runbook="ok", actor="alice")] == [started.id]


def test_a_run_that_fails_keeps_the_failing_cell_and_its_error(sqlite_engine: Engine) -> None:
    started = launch.start_run(sqlite_engine, "fails", {"limit": 7}, actor="cli")
    done = launch.wait_for_run(sqlite_engine, started.id, timeout=DEADLINE)
    assert done.status == "failed"
    assert done.error == "ValueError: boom at 7"
    assert done.error_cell == 3  # parameters, injected parameters, then the raising cell
    assert Path(done.to_dict(sqlite_engine.settings)["html"]).is_file()
    assert recent_operations(sqlite_engine.db, kind="runbook")[0]["status"] == "failure"


def test_cancel_stops_the_kernel_and_marks_the_run_cancelled(sqlite_engine: Engine) -> None:
    started = launch.start_run(sqlite_engine, "slow", {"seconds": 300}, actor="cli")
    running = wait_until(running_in(sqlite_engine, started.id, 3), DEADLINE, "the sleeping cell", every=0.1)
    kernels = psutil.Process(running.pid).children(recursive=True)
    assert kernels
    launch.cancel_run(sqlite_engine, started.id)
    done = launch.wait_for_run(sqlite_engine, started.id, timeout=DEADLINE)
    assert done.status == "cancelled" and done.finished_at is not None
    _gone, alive = psutil.wait_procs(kernels, timeout=30)
    assert not alive
    with pytest.raises(Conflict, match="already finished"):
        launch.cancel_run(sqlite_engine, started.id)


def test_a_runner_killed_with_sigkill_is_marked_interrupted(sqlite_engine: Engine) -> None:
    started = launch.start_run(sqlite_engine, "slow_change", {"seconds": 300, "dry_run": False}, actor="cli")
    running = wait_until(running_in(sqlite_engine, started.id, 3), DEADLINE, "the sleeping cell", every=0.1)
    assert running.pid is not None
    kernels = psutil.Process(running.pid).children(recursive=True)
    os.kill(running.pid, signal.SIGKILL)

    def finished() -> RunRecord | None:
        run = runs.get_run(sqlite_engine.db, started.id)
        return None if run.active else run

    try:
        found = wait_until(finished, DEADLINE, "the reader to find the dead runner", every=0.1)
        assert found.status == "interrupted" and "killed or crashed" in str(found.error)
        # The orphaned kernel ends itself (ipykernel watches its parent), so its cell stops too.
        _gone, alive = psutil.wait_procs(kernels, timeout=30)
        assert not alive
    finally:
        for kernel in kernels:
            with contextlib.suppress(psutil.Error):
                kernel.kill()
    # The dead run no longer holds the one change slot.
    again = launch.start_run(sqlite_engine, "slow_change", {"seconds": 0, "dry_run": False}, actor="cli")
    assert launch.wait_for_run(sqlite_engine, again.id, timeout=DEADLINE).status == "succeeded"


def test_two_applying_runs_at_once_one_is_refused(run_engine: Engine) -> None:
    first = launch.start_run(run_engine, "slow_change", {"seconds": 300, "dry_run": False}, actor="alice")
    with pytest.raises(Conflict) as refused:
        launch.start_run(run_engine, "slow_change", {"dry_run": "false"}, actor="bob")
    assert f"run {first.id} of slow_change by alice" in refused.value.message
    assert "one data-changing run at a time" in refused.value.message
    # Dry runs and analyses still run side by side.
    dry = launch.start_run(run_engine, "slow_change", {"dry_run": True}, actor="bob")
    assert launch.wait_for_run(run_engine, dry.id, timeout=DEADLINE).status == "succeeded"
    assert [r.actor for r in runs.list_runs(run_engine.db)] == ["bob", "alice"]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"colour": "red"}, "runbook ok has no parameter 'colour'; its parameters are: words, repeat"),
        ({"repeat": "many"}, "parameter repeat 'many' must be a number (int)"),
        ({"repeat": True}, "parameter repeat True must be a number (int)"),
        ({"words": 3}, "parameter words 3 must be text"),
    ],
)
def test_a_bad_parameter_is_refused_before_a_kernel_starts(
    sqlite_engine: Engine, parameters: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        launch.start_run(sqlite_engine, "ok", parameters, actor="cli")
    assert refused.value.message == message
    assert runs.list_runs(sqlite_engine.db) == []
    assert not runs.runs_dir(sqlite_engine.settings).exists()


def test_a_run_past_the_timeout_is_stopped_and_failed(data_dir: Path, nb_dir: Path) -> None:
    engine = Engine(make_settings(data_dir, JAMEY_NOTEBOOKS_DIR=str(nb_dir), JAMEY_RUNBOOK_TIMEOUT="3s"))
    try:
        started = launch.start_run(engine, "slow", {"seconds": 300}, actor="cli")
        done = launch.wait_for_run(engine, started.id, timeout=DEADLINE)
        assert done.status == "failed" and done.error == "timed out after 3s"
    finally:
        engine.close()


def test_retention_keeps_the_newest_runs_and_never_an_active_one(data_dir: Path, nb_dir: Path) -> None:
    settings: Settings = make_settings(data_dir, JAMEY_NOTEBOOKS_DIR=str(nb_dir), JAMEY_RUNBOOK_KEEP="2")
    engine = Engine(settings)
    try:
        made = []
        for number in range(4):
            record = runs.create_run(engine.db, runbook="ok", parameters={}, actor="cli", changes_data=False)
            (runs.make_run_dir(settings, record.id) / runs.NOTEBOOK_FILE).write_text("{}")
            if number != 0:  # the oldest is still running (this process is its owner)
                runs.finish_if_active(engine.db, record.id, "succeeded")
            made.append(record.id)
            time.sleep(0.01)
        removed = runs.apply_retention(engine.db, settings)
        assert removed == [made[1]]
        assert runs.run_dir(settings, made[0]).exists()  # active: kept although old
        assert not runs.run_dir(settings, made[1]).exists()
        assert runs.get_run(engine.db, made[1]).to_dict(settings)["notebook"] is None
        assert all(runs.run_dir(settings, run_id).exists() for run_id in made[2:])
    finally:
        engine.close()


def test_retention_never_evicts_a_run_that_changed_data_in_the_last_week(
    data_dir: Path, nb_dir: Path
) -> None:
    settings: Settings = make_settings(data_dir, JAMEY_NOTEBOOKS_DIR=str(nb_dir), JAMEY_RUNBOOK_KEEP="1")
    engine = Engine(settings)
    try:

        def finished(changes_data: bool, age: timedelta = timedelta(0)) -> str:
            record = runs.create_run(
                engine.db, runbook="ok", parameters={}, actor="cli", changes_data=changes_data
            )
            (runs.make_run_dir(settings, record.id) / runs.NOTEBOOK_FILE).write_text("{}")
            runs.finish_if_active(engine.db, record.id, "succeeded")
            runs.update_run(engine.db, record.id, created_at=utcnow() - age)
            return record.id

        last_month = finished(True, timedelta(days=8))
        yesterday = finished(True, timedelta(days=1))
        cheap = [finished(False, timedelta(minutes=10 - n)) for n in range(5)]

        removed = runs.apply_retention(engine.db, settings)

        assert set(removed) == {last_month, *cheap[:-1]}
        assert runs.run_dir(settings, yesterday).exists()  # changed data this week: kept
        assert runs.run_dir(settings, cheap[-1]).exists()  # the newest
    finally:
        engine.close()


# -- failure paths: the runbook gone, rendering, a runner that dies, a cancel from another host ---
@pytest.mark.parametrize("change", ["removed", "no parameters cell any more"])
def test_a_run_whose_runbook_was_removed_before_it_started_fails_naming_it(
    sqlite_engine: Engine, nb_dir: Path, change: str
) -> None:
    queued = runs.create_run(
        sqlite_engine.db,
        runbook="slow_change",
        parameters={"dry_run": False},
        actor="alice",
        changes_data=True,
    )
    # Changed between the request and the runner's start.
    if change == "removed":
        (nb_dir / "slow_change.ipynb").unlink()
    else:
        (nb_dir / "slow_change.ipynb").write_bytes((nb_dir / "plain.ipynb").read_bytes())

    finished = run_runner(sqlite_engine, queued.id)

    assert finished.returncode == 1, finished.stdout + finished.stderr
    done = runs.get_run(sqlite_engine.db, queued.id)
    assert done.status == "failed", done
    assert done.error == f"runbook 'slow_change' no longer exists in {nb_dir}"
    assert done.summary is None and done.finished_at is not None
    assert not (runs.run_dir(sqlite_engine.settings, queued.id) / runs.NOTEBOOK_FILE).exists()
    [operation] = recent_operations(sqlite_engine.db, kind="runbook")
    assert operation["status"] == "failure" and "no longer exists" in str(operation["detail"])
    # The failed run let go of the one change slot.
    runs.create_run(sqlite_engine.db, runbook="slow_change", parameters={}, actor="bob", changes_data=True)


def test_a_notebook_that_cannot_be_rendered_fails_the_run_and_keeps_its_notebook_and_summary(
    sqlite_engine: Engine,
) -> None:
    queued = runs.create_run(
        sqlite_engine.db, runbook="ok", parameters={"repeat": 3}, actor="alice", changes_data=False
    )
    folder = runs.make_run_dir(sqlite_engine.settings, queued.id)
    (folder / runs.HTML_FILE).mkdir()  # where the HTML goes, a directory: writing it fails

    finished = run_runner(sqlite_engine, queued.id)

    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert "rendering the executed notebook failed" in finished.stderr  # logged with its traceback
    done = runs.get_run(sqlite_engine.db, queued.id)
    assert done.status == "failed", done
    assert done.error is not None and done.error.startswith("rendering the executed notebook failed: ")
    assert "Is a directory" in done.error and "\n" not in done.error
    assert done.summary == {"count": 9, "words": "a b c"}  # the notebook itself ran to the end
    assert done.error_cell is None  # no cell failed
    assert "counted 9" in (folder / runs.NOTEBOOK_FILE).read_text()
    assert recent_operations(sqlite_engine.db, kind="runbook")[0]["status"] == "failure"


def test_a_runner_that_crashes_before_its_notebook_marks_the_run_failed_with_the_reason(
    sqlite_engine: Engine,
) -> None:
    queued = runs.create_run(sqlite_engine.db, runbook="ok", parameters={}, actor="alice", changes_data=True)
    runs.runs_dir(sqlite_engine.settings).mkdir(parents=True)
    runs.run_dir(sqlite_engine.settings, queued.id).write_text("not a folder")  # its folder cannot be made

    finished = run_runner(sqlite_engine, queued.id)

    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert f"runbook run {queued.id} failed in the runner" in finished.stderr
    done = runs.get_run(sqlite_engine.db, queued.id)
    assert done.status == "failed", done
    assert done.error is not None and done.error.startswith("the runner failed: ")
    assert "File exists" in done.error and "\n" not in done.error
    runs.create_run(sqlite_engine.db, runbook="ok", parameters={}, actor="bob", changes_data=True)


def test_a_runner_that_dies_before_taking_its_run_is_found_by_the_next_reader(sqlite_engine: Engine) -> None:
    """start_run records the runner's pid on the queued row; a runner killed before its first
    write leaves the run queued, and the next reader (the history, the run view) marks it."""
    queued = runs.create_run(
        sqlite_engine.db,
        runbook="slow_change",
        parameters={"dry_run": False},
        actor="alice",
        changes_data=True,
    )
    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        runs.update_run(sqlite_engine.db, queued.id, pid=runner.pid)  # as start_run does
        assert runs.get_run(sqlite_engine.db, queued.id).status == "queued"  # alive: left alone
    finally:
        runner.kill()
        runner.wait(timeout=30)

    [listed] = runs.list_runs(sqlite_engine.db)

    assert listed.id == queued.id and listed.status == "interrupted", listed
    assert "killed or crashed" in str(listed.error) and listed.finished_at is not None
    # Its claim on the change slot went with it: the next data-changing run may start.
    again = launch.start_run(sqlite_engine, "slow_change", {"seconds": 0, "dry_run": False}, actor="bob")
    assert launch.wait_for_run(sqlite_engine, again.id, timeout=DEADLINE).status == "succeeded"


def test_a_cancel_from_another_host_reaches_the_runner_through_the_cancel_flag(
    sqlite_engine: Engine,
) -> None:
    """A run started on another host cannot be signalled from here: the cancel only sets the
    row's flag, which that host's runner polls (every second) and obeys."""
    started = launch.start_run(sqlite_engine, "slow", {"seconds": 300}, actor="cli")
    running = wait_until(running_in(sqlite_engine, started.id, 3), DEADLINE, "the sleeping cell", every=0.1)
    kernels = psutil.Process(running.pid).children(recursive=True)
    runs.update_run(sqlite_engine.db, started.id, host="another-host.example")  # seen from elsewhere
    try:
        asked = launch.cancel_run(sqlite_engine, started.id)
        assert asked.status == "running"  # nothing signalled here: the flag is all there is
        assert runs.cancel_requested(sqlite_engine.db, started.id)
        done = launch.wait_for_run(sqlite_engine, started.id, timeout=120)
    finally:
        runs.update_run(sqlite_engine.db, started.id, host=running.host)  # so cleanup may signal it
    assert done.status == "cancelled", done
    assert done.error == "cancelled: the kernel was stopped"
    _gone, alive = psutil.wait_procs(kernels, timeout=30)
    assert not alive
