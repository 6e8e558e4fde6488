"""The caps on runbook runs: at most JAMEY_RUNS_MAX_ACTIVE at once, JAMEY_RUNS_MAX_PER_ACTOR of one
key, the rest queued up to JAMEY_RUNS_MAX_QUEUED and refused past it; real runners and kernels,
started from several processes at once, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from helpers import make_settings
from notebook_factory import make_test_notebooks

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.errors import Conflict, RateLimited
from jamey_engine.runbooks import launch, runs

DEADLINE = 300.0  # twelve kernels, two at a time, on a loaded 2-core machine
CAPS = {"JAMEY_RUNS_MAX_ACTIVE": "3", "JAMEY_RUNS_MAX_PER_ACTOR": "2", "JAMEY_RUNS_MAX_QUEUED": "10"}

# One process starting runs of "slow" as one key, all at once on its threads; prints what each got.
STARTER = """
import json, sys, threading
from jamey_engine.engine import Engine
from jamey_engine.errors import Conflict, RateLimited
from jamey_engine.runbooks import launch

engine = Engine()
count, actor = int(sys.argv[1]), sys.argv[2]
results = []
gate = threading.Barrier(count)

def one():
    gate.wait()
    try:
        record = launch.start_run(engine, "slow", {"seconds": 1}, actor=actor)
        results.append({"id": record.id, "waiting": record.waiting})
    except RateLimited as err:
        results.append({"refused": err.message, "retry_after": err.retry_after})

threads = [threading.Thread(target=one) for _ in range(count)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
engine.close()
print(json.dumps(results))
"""


@pytest.fixture
def capped(data_dir: Path, tmp_path: Path, database_url: str) -> Iterator[Engine]:
    notebooks = make_test_notebooks(tmp_path / "notebooks")
    settings = make_settings(
        data_dir, JAMEY_NOTEBOOKS_DIR=str(notebooks), JAMEY_DATABASE_URL=database_url, **CAPS
    )
    engine = Engine(settings)
    yield engine
    for run in runs.list_runs(engine.db, limit=100):
        if run.active:
            with contextlib.suppress(Conflict):
                launch.cancel_run(engine, run.id)
    engine.close()


def _kernels(run_ids: set[str]) -> int:
    """Jupyter kernels alive now under the runners of these runs (other engineers' runs on this
    host are not counted). A runner frees its slot only once its kernel has exited.

    One pass over the process table (pid, parent, command line), then the descendants worked
    out from it: asking each runner for its children walks the whole table again per runner, and
    under load such a sample spanned long enough to count a finished run's kernel and its
    successor's as alive together."""
    table: dict[int, tuple[int, str]] = {}
    for process in psutil.process_iter(["ppid", "cmdline"]):
        line = process.info.get("cmdline") or []
        table[process.pid] = (process.info.get("ppid") or 0, " ".join(line))
    runners = {
        pid
        for pid, (_, line) in table.items()
        if "jamey_engine.runbooks.runner" in line and line.rsplit(" ", 1)[-1] in run_ids
    }
    found = 0
    for parent, line in table.values():
        if "ipykernel" not in line:
            continue
        seen: set[int] = set()
        while parent and parent not in runners and parent not in seen:
            seen.add(parent)
            parent = table.get(parent, (0, ""))[0]
        found += parent in runners
    return found


class Watcher:
    """Samples, every few milliseconds until stopped, the runs holding a slot per actor (the
    database) and the kernels alive (the host), keeping the highest of each."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.most_holding: dict[str, int] = {}
        self.most_total = 0
        self.most_kernels = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            found = runs.list_runs(self.engine.db, limit=1000)
            holding: dict[str, int] = {}
            for run in found:
                if run.active and not run.waiting:
                    holding[run.actor] = holding.get(run.actor, 0) + 1
            for actor, number in holding.items():
                self.most_holding[actor] = max(self.most_holding.get(actor, 0), number)
            self.most_total = max(self.most_total, sum(holding.values()))
            self.most_kernels = max(self.most_kernels, _kernels({run.id for run in found}))
            time.sleep(0.02)


def _start_from_processes(
    settings: Settings, processes: int, each: int, actor: str
) -> list[dict[str, object]]:
    environ = {**os.environ, **settings.to_environ(), "PYTHONPATH": os.getcwd()}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, str(each), actor],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    results: list[dict[str, object]] = []
    for child in children:
        out, err = child.communicate(timeout=DEADLINE)
        assert child.returncode == 0, err
        results.extend(json.loads(out.strip().splitlines()[-1]))
    return results


def _wait_all(engine: Engine, run_ids: list[str]) -> list[runs.RunRecord]:
    return [launch.wait_for_run(engine, run_id, timeout=DEADLINE) for run_id in run_ids]


def test_twenty_concurrent_runs_of_one_key_run_two_at_a_time_and_the_queued_all_complete(
    capped: Engine,
) -> None:
    with Watcher(capped) as watcher:
        results = _start_from_processes(capped.settings, processes=4, each=5, actor="alice")
        started = [str(result["id"]) for result in results if "id" in result]
        refused = [result for result in results if "refused" in result]
        # Two hold alice's slots, ten wait (the queue's bound), the other eight are refused.
        assert len(started) == 12, results
        assert sum(1 for result in results if result.get("waiting")) == 10, results
        assert len(refused) == 8, results
        assert all(result["retry_after"] == runs.QUEUE_FULL_RETRY_AFTER for result in refused)
        assert "JAMEY_RUNS_MAX_QUEUED=10" in str(refused[0]["refused"])
        done = _wait_all(capped, started)
    assert [run.status for run in done] == ["succeeded"] * 12, [(run.id, run.error) for run in done]
    assert watcher.most_holding == {"alice": 2}
    assert 1 <= watcher.most_kernels <= 2
    # Every queued run started only after an earlier one of alice's finished.
    starts = sorted(run.started_at for run in done if run.started_at)
    ends = sorted(run.finished_at for run in done if run.finished_at)
    for index in range(2, len(starts)):
        assert starts[index] >= ends[index - 2]


def test_the_active_cap_holds_across_keys_and_a_freed_slot_starts_the_oldest_waiting_run(
    capped: Engine,
) -> None:
    first = [
        launch.start_run(capped, "slow", {"seconds": 300}, actor=actor) for actor in ("alice", "alice", "bob")
    ]
    assert [run.waiting for run in first] == [False, False, False]
    queued = launch.start_run(capped, "slow", {"seconds": 0}, actor="bob")  # bob has one: the host has three
    assert queued.status == "queued" and queued.waiting and queued.pid is None
    assert launch.start_waiting(capped) == []  # no slot is free
    assert runs.get_run(capped.db, queued.id).waiting  # a waiting run is not reaped as dead
    launch.cancel_run(capped, first[0].id)  # perhaps before its kernel is up: stopped all the same
    done = launch.wait_for_run(capped, queued.id, timeout=DEADLINE)
    assert done.status == "succeeded"
    assert (
        done.started_at is not None
        and done.started_at >= launch.wait_for_run(capped, first[0].id).finished_at
    )  # type: ignore[operator]


def test_a_queued_run_can_be_cancelled_before_it_starts(capped: Engine) -> None:
    holders = [launch.start_run(capped, "slow", {"seconds": 300}, actor="alice") for _ in range(2)]
    queued = launch.start_run(capped, "slow", {"seconds": 0}, actor="alice")
    assert queued.waiting
    cancelled = launch.cancel_run(capped, queued.id)
    assert cancelled.status == "cancelled" and cancelled.error == "cancelled before it started"
    for holder in holders:
        launch.cancel_run(capped, holder.id)
    assert launch.start_waiting(capped) == []


def test_past_the_queue_bound_a_run_is_refused_and_nothing_is_recorded(
    data_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings(
        data_dir,
        JAMEY_NOTEBOOKS_DIR=str(make_test_notebooks(tmp_path / "notebooks")),
        JAMEY_RUNS_MAX_ACTIVE="1",
        JAMEY_RUNS_MAX_QUEUED="0",
    )
    engine = Engine(settings)
    try:
        holder = launch.start_run(engine, "slow", {"seconds": 300}, actor="alice")
        with pytest.raises(RateLimited) as refused:
            launch.start_run(engine, "ok", {}, actor="bob")
        assert refused.value.status == 429 and refused.value.retry_after > 0
        assert "1 running (0 of them by bob) and 0 queued" in refused.value.message
        assert [run.id for run in runs.list_runs(engine.db)] == [holder.id]
        launch.cancel_run(engine, holder.id)
        launch.wait_for_run(engine, holder.id, timeout=DEADLINE)
    finally:
        engine.close()
