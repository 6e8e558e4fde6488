"""Runbook and notebook costs: what the runbook adds over the store's own calls, and what papermill adds.

Rows (medians):
- growth analysis (index history, rates, 1 GiB projection) over a year, against the store's
  ``growth(365)`` call alone: the pandas work the notebook adds;
- the prune runbook's apply (re-plan, prune, oplog, verify; no backup) against ``MemoryStore.prune``
  alone on an identical copy of the data dir: the safety steps' overhead;
- the prune notebook's dry run under papermill (kernel start included) against the same steps in
  process: what an unattended run costs on top.
The data dir is real: memories with timestamps spread over 90 days, half of them older than 45 days.
``--quick`` uses 1,000 memories and one repetition.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import papermill

from bench.common import Row, cli, row
from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.memory import LAYERS
from jamey_engine.runbooks import GrowthReport, apply_prune, plan_prune, verify_prune

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _engine(data_dir: Path) -> Engine:
    return Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))


def build(data_dir: Path, memories: int) -> None:
    """``memories`` spread evenly over the layers and the last 90 days."""
    engine = _engine(data_dir)
    now = utcnow()
    per_layer = memories // len(LAYERS)
    for layer in LAYERS:
        items = [
            {
                "content": f"{layer} memory {i} about harbour tides and ledgers",
                "timestamp": now - timedelta(days=90 * i / per_layer),
            }
            for i in range(per_layer)
        ]
        engine.memory.store_batch(layer, items)
    engine.keys.create("bench", scopes=("admin",))
    engine.close()


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def bench_growth(data_dir: Path, repeat: int) -> list[Row]:
    engine = _engine(data_dir)
    fetch, analysis = [], []
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            engine.memory.growth(365)
            fetch.append(time.perf_counter() - start)
            report = GrowthReport(engine, days=365, say=lambda _line: None)
            start = time.perf_counter()
            report.index_history()
            report.growth_rates()
            report.crossing()
            analysis.append(time.perf_counter() - start)
    finally:
        engine.close()
    value = _median(analysis)
    return [
        row(
            "growth analysis, 365 days x 5 layers",
            "seconds",
            value,
            baseline=_median(fetch),
            target="< 2 s",
            met=value < 2,
            higher_is_better=False,
        )
    ]


def bench_prune(data_dir: Path, work: Path, repeat: int) -> list[Row]:
    raw: list[float] = []
    runbook: list[float] = []
    for n in range(repeat):
        for kind, samples in (("raw", raw), ("runbook", runbook)):
            copy = work / f"{kind}-{n}"
            shutil.copytree(data_dir, copy)
            engine = _engine(copy)
            try:
                if kind == "raw":
                    start = time.perf_counter()
                    engine.memory.prune(timedelta(days=45))
                else:
                    plan = plan_prune(engine, LAYERS, "45d")
                    start = time.perf_counter()
                    outcome = apply_prune(
                        engine, plan, dry_run=False, confirm=plan.phrase, backup_first=False
                    )
                    assert verify_prune(engine, outcome).ok
                samples.append(time.perf_counter() - start)
            finally:
                engine.close()
            shutil.rmtree(copy)
    value = _median(runbook)
    return [
        row(
            "prune apply: runbook (re-plan, prune, oplog, verify) vs store.prune",
            "seconds",
            value,
            baseline=_median(raw),
            target="<= 2x store.prune",
            met=value <= 2 * _median(raw),
            higher_is_better=False,
        )
    ]


def bench_papermill(data_dir: Path, work: Path, repeat: int) -> list[Row]:
    in_process, notebook = [], []
    for n in range(repeat):
        engine = _engine(data_dir)
        from jamey_engine.runbooks import PruneRunbook

        start = time.perf_counter()
        runbook = PruneRunbook(engine, layers=LAYERS, older_than="45d", say=lambda _line: None)
        runbook.preflight()
        runbook.plan()
        runbook.apply()
        runbook.verify()
        runbook.summary()
        runbook.close()
        in_process.append(time.perf_counter() - start)
        start = time.perf_counter()
        papermill.execute_notebook(
            str(NOTEBOOKS / "prune_memories.ipynb"),
            str(work / f"prune-{n}.ipynb"),
            parameters={"data_dir": str(data_dir), "older_than": "45d"},
            kernel_name="python3",
            cwd=str(NOTEBOOKS),
            progress_bar=False,
        )
        notebook.append(time.perf_counter() - start)
    value = _median(notebook)
    return [
        row(
            "prune notebook dry run: papermill vs in process",
            "seconds",
            value,
            baseline=_median(in_process),
            target="< 15 s",
            met=value < 15,
            higher_is_better=False,
        )
    ]


def main(quick: bool = False) -> list[Row]:
    """Build a data dir, run the three comparisons, return the rows."""
    memories = 1_000 if quick else 50_000
    repeat = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="bench-notebooks-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        build(data_dir, memories)
        rows = bench_growth(data_dir, repeat)
        rows += bench_prune(data_dir, work, repeat)
        rows += bench_papermill(data_dir, work, repeat)
    for r in rows:
        r["benchmark"] += f" ({memories:,} memories)"
    return rows


if __name__ == "__main__":
    cli(main)
