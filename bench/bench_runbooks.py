"""The runbook runner against plain papermill: a dry run of ``prune_memories`` on 100,000 memories.

- started from the workbench's runner (``launch.start_run`` then following the run's row, as every
  front door does: its own process, a kernel, progress per cell, the HTML rendering, the record);
- the same notebook and parameters under the ``papermill`` command (its own process and kernel).

Runs alternate so both see the same machine load; medians of ``repeat`` runs. Target: the runner
takes at most 1.2x papermill's time plus 1 s. Also the time from ``start_run`` to the first
progress update (the first code cell started).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_notebooks import NOTEBOOKS, build
from bench.common import Row, cli, row
from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.runbooks import launch

PARAMETERS = {"older_than": "45d"}


def _papermill_command() -> str:
    beside = Path(sys.executable).parent / "papermill"
    return str(beside) if beside.exists() else (shutil.which("papermill") or "papermill")


def run_papermill(data_dir: Path, out: Path) -> float:
    """Seconds for ``papermill`` (the command) to run the prune notebook's dry run."""
    command = [_papermill_command(), str(NOTEBOOKS / "prune_memories.ipynb"), str(out), "-k", "python3"]
    command += ["--cwd", str(NOTEBOOKS), "--no-progress-bar"]
    for name, value in {**PARAMETERS, "data_dir": str(data_dir)}.items():
        command += ["-p", name, value]
    start = time.perf_counter()
    subprocess.run(
        command, check=True, env={**os.environ, "JAMEY_DATA_DIR": str(data_dir)}, capture_output=True
    )
    return time.perf_counter() - start


def run_runner(engine: Engine) -> tuple[float, float]:
    """Seconds for a runner run to finish, and to its first progress update."""
    first: list[float] = []
    start = time.perf_counter()
    record = launch.start_run(engine, "prune_memories", PARAMETERS, actor="bench")

    def progress(run: object) -> None:
        if not first and getattr(run, "cell_index", None) is not None:
            first.append(time.perf_counter() - start)

    done = launch.wait_for_run(engine, record.id, on_progress=progress, poll=0.02)
    total = time.perf_counter() - start
    if done.status != "succeeded":
        raise RuntimeError(f"runner run {done.id} {done.status}: {done.error}")
    return total, first[0] if first else total


def main(quick: bool = False) -> list[Row]:
    """Build the data dir, alternate the two, return the rows."""
    memories = 2_000 if quick else 100_000
    repeat = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="bench-runbooks-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        build(data_dir, memories)
        engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
        try:
            runner_times, first_times, papermill_times = [], [], []
            run_runner(engine)  # warm the page cache and the catalog, as a running service has them
            for n in range(repeat):
                papermill_times.append(run_papermill(data_dir, work / f"papermill-{n}.ipynb"))
                total, first = run_runner(engine)
                runner_times.append(total)
                first_times.append(first)
        finally:
            engine.close()
    runner_s = statistics.median(runner_times)
    papermill_s = statistics.median(papermill_times)
    limit = 1.2 * papermill_s + 1
    size = f"{memories:,} memories"
    return [
        row(
            f"prune dry run: runner vs papermill command ({size})",
            "seconds",
            runner_s,
            baseline=papermill_s,
            target="<= 1.2x papermill + 1 s",
            met=runner_s <= limit,
            higher_is_better=False,
        ),
        row(
            f"prune dry run: time to the first progress update ({size})",
            "seconds",
            statistics.median(first_times),
        ),
    ]


if __name__ == "__main__":
    cli(main)
