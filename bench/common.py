"""Shared benchmark plumbing: timing, medians, result rows, and the CLI of each bench module."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Row = dict[str, Any]


def row(
    benchmark: str,
    metric: str,
    value: float,
    *,
    baseline: float | None = None,
    target: str = "",
    met: bool | None = None,
    higher_is_better: bool = True,
) -> Row:
    """One result row; ``ratio`` is value/baseline (or baseline/value when lower is better)."""
    ratio = None
    if baseline:
        ratio = value / baseline if higher_is_better else baseline / value if value else None
    return {
        "benchmark": benchmark,
        "metric": metric,
        "value": value,
        "baseline": baseline,
        "ratio": ratio,
        "target": target,
        "met": met,
    }


def median_seconds(fn: Callable[[], object], repeat: int = 5) -> float:
    """The median wall time of ``repeat`` calls of ``fn``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def percentile(samples: Sequence[float], pct: float) -> float:
    """The pct-th percentile (0-100) of samples, nearest-rank."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def machine() -> str:
    """A one-line description of this machine for the results."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {cpu}, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def format_table(rows: Sequence[Row]) -> str:
    """Rows as a Markdown table."""

    def num(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    lines = [
        "| benchmark | metric | value | baseline | ratio | target | met |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        met = {True: "yes", False: "**no**", None: ""}[r.get("met")]
        lines.append(
            f"| {r['benchmark']} | {r['metric']} | {num(r['value'])} | {num(r.get('baseline'))} | "
            f"{num(r.get('ratio'))} | {r.get('target', '')} | {met} |"
        )
    return "\n".join(lines)


def cli(main: Callable[[bool], list[Row]]) -> None:
    """Run one bench module from the command line: `python -m bench.bench_x [--quick] [--json]`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--json", action="store_true", help="print JSON rows")
    args = parser.parse_args()
    rows = main(args.quick)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))


def copy_of(data_dir: Path, work: Path) -> Path:
    """A copy of ``data_dir`` (the seeded memories and the keys) in a new directory under
    ``work``: each server that stores gets one, so every store run starts on the same empty
    ``working`` layer instead of on what the servers before it stored (a layer that keeps
    growing makes each later run pay for larger merges: a comparison with an earlier run
    would measure the order of the runs)."""
    copy = Path(tempfile.mkdtemp(prefix="copy-", dir=work)) / "data"
    shutil.copytree(data_dir, copy)
    return copy
