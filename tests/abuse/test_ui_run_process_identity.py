"""A run's liveness is its process's identity, not a pid that another process may reuse.

Reproduced: a run whose process died (a crash, a reboot) while its pid went to an unrelated
process stayed ``running`` for good (so every data-changing runbook got 409), and Cancel sent
SIGTERM to that unrelated process. Here the unrelated process is real: a ``sleep`` whose pid is
written into the record of a run whose own process (another real ``sleep``) has ended.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator

import pytest

from jamey_engine.engine import Engine
from jamey_engine.errors import Conflict
from jamey_engine.fsutil import process_alive, process_identity
from jamey_engine.runbooks import launch, runs


@pytest.fixture
def unrelated() -> Iterator[subprocess.Popen[bytes]]:
    """A real process that has nothing to do with any run."""
    process = subprocess.Popen(["sleep", "300"])
    yield process
    process.kill()
    process.wait()


def _run_whose_pid_was_reused(engine: Engine, unrelated: subprocess.Popen[bytes]) -> runs.RunRecord:
    """A data-changing run marked running by its own process, which then ended; its pid now
    belongs to ``unrelated`` (what a reboot or pid wrap-around leaves behind)."""
    record = runs.create_run(
        engine.db, runbook="prune_memories", parameters={}, actor="test", changes_data=True
    )
    own = subprocess.Popen(["sleep", "300"])
    runs.update_run(engine.db, record.id, status="running", pid=own.pid)
    identity = runs.get_run(engine.db, record.id).pid_identity
    assert identity == process_identity(own.pid) and identity is not None
    own.kill()
    own.wait()
    runs.update_run(engine.db, record.id, pid=unrelated.pid, pid_identity=identity)
    assert process_alive(unrelated.pid)  # the pid alone says "alive"
    return record


def test_a_run_whose_pid_was_reused_is_marked_interrupted(
    engine: Engine, unrelated: subprocess.Popen[bytes]
) -> None:
    record = _run_whose_pid_was_reused(engine, unrelated)
    found = runs.get_run(engine.db, record.id)
    assert found.status == "interrupted", found
    # and the change slot is free: the next data-changing run is not refused with 409
    follower = runs.create_run(
        engine.db, runbook="prune_memories", parameters={}, actor="test", changes_data=True
    )
    assert follower.status == "queued"


def test_cancel_never_signals_the_process_that_reused_the_pid(
    engine: Engine, unrelated: subprocess.Popen[bytes]
) -> None:
    record = _run_whose_pid_was_reused(engine, unrelated)
    with contextlib.suppress(Conflict):  # already found interrupted: nothing to cancel or signal
        launch.cancel_run(engine, record.id)
    time.sleep(0.5)
    assert unrelated.poll() is None, "cancel killed an unrelated process"
    assert runs.get_run(engine.db, record.id).status in ("interrupted", "cancelled")


def test_a_live_run_process_is_still_alive(engine: Engine) -> None:
    record = runs.create_run(
        engine.db, runbook="memory_growth", parameters={}, actor="test", changes_data=False
    )
    own = subprocess.Popen(["sleep", "300"])
    try:
        runs.update_run(engine.db, record.id, status="running", pid=own.pid)
        assert runs.get_run(engine.db, record.id).status == "running"
    finally:
        own.kill()
        own.wait()
    assert runs.get_run(engine.db, record.id).status == "interrupted"
