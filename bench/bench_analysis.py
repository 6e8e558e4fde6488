"""Analysts' toolkit benchmarks (issue 17), each against a baseline in the same run.

On one layer of 1,000,000 memories over a year, 30% of them repeats of earlier ones (varied case):

1. ``memories_frame`` of the whole layer: seconds and peak memory, against
   ``jamey memory export`` plus ``pandas.read_json(lines=True)``. Each side runs in a fresh
   process; peak memory is the rise of the high-water mark over the process after its imports
   (for the baseline, the larger of the export process and the read_json process).
2. ``histogram`` by day over the year (a tantivy aggregation): median ms of 20 calls, against
   counting by hand in pandas over the frame of timestamps (the frame's load not counted).
3. ``duplicates`` of the layer: seconds, against pandas on an already loaded frame
   (casefold, split/join whitespace, group).
4. ``dedupe`` of the layer: seconds and bytes freed, against raw ``delete_documents_by_term``
   of the same ids on a copy of the index (which frees no disk until tantivy merges).

``--quick`` uses 50,000 memories; JAMEY_BENCH_ANALYSIS_SIZE sets the size. JAMEY_BENCH_TMP
chooses the scratch filesystem.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import tantivy

from bench.bench_memory import make_texts
from bench.common import Row, cli, median_seconds, row
from jamey_engine.durations import utcnow
from jamey_engine.memory import MemoryStore
from jamey_engine.memory.analysis import MemoryAnalysis
from jamey_engine.memory.dedupe import find_duplicates
from jamey_engine.memory.generations import dir_size
from jamey_engine.memory.portable import copy_index
from jamey_engine.memory.schema import ID

LAYER = "long_term"
DUPLICATE_SHARE = 0.3

_CHILD_PRELUDE = """
import json, resource, sys, time
from pathlib import Path
import pandas as pd

def vm(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return 0
"""

_OURS = (
    _CHILD_PRELUDE
    + """
from jamey_engine.memory import MemoryStore
from jamey_engine.memory.analysis import MemoryAnalysis
store = MemoryStore(Path(sys.argv[1]), lock_timeout=60)
store.index(sys.argv[2])
before = vm("VmRSS:")
start = time.perf_counter()
frame = MemoryAnalysis(store).memories_frame(sys.argv[2])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak": vm("VmHWM:") - before, "rows": len(frame),
                  "frame_bytes": int(frame.memory_usage(deep=True).sum())}))
"""
)

_BASELINE = (
    _CHILD_PRELUDE
    + """
import subprocess
data_dir, layer, jamey, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
before = vm("VmRSS:")
start = time.perf_counter()
subprocess.run([jamey, "--data-dir", data_dir, "memory", "export", "--layer", layer, out], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
export_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
frame = pd.read_json(out, lines=True)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak": max(vm("VmHWM:") - before, export_peak), "rows": len(frame)}))
"""
)


def _size(quick: bool) -> int:
    return int(os.environ.get("JAMEY_BENCH_ANALYSIS_SIZE") or (50_000 if quick else 1_000_000))


def build_layer(store: MemoryStore, count: int) -> float:
    """``count`` memories over the last 365 days, DUPLICATE_SHARE of them copies of earlier ones."""
    texts = make_texts(count, seed=11)
    rng = np.random.default_rng(5)
    repeat = rng.random(count) < DUPLICATE_SHARE
    repeat[:10] = False
    for i in np.flatnonzero(repeat):
        source = texts[int(rng.integers(0, i))]
        texts[i] = source.upper() if i % 2 else source
    now = utcnow()
    step = timedelta(days=365) / count
    start = time.perf_counter()
    chunk = 250_000
    for offset in range(0, count, chunk):
        batch = [
            (texts[i], now - timedelta(days=365) + step * i)
            for i in range(offset, min(offset + chunk, count))
        ]
        store.store_batch(LAYER, batch)
    return count / (time.perf_counter() - start)


def _child(code: str, *args: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, env=os.environ.copy()
    )
    parsed: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def bench_frame(root: Path, work: Path, count: int, rounds: int) -> list[Row]:
    jamey = str(Path(sys.executable).with_name("jamey"))
    ours, base = [], []
    for attempt in range(rounds):
        ours.append(_child(_OURS, str(root), LAYER))
        out = work / f"export-{attempt}.jsonl"
        base.append(_child(_BASELINE, str(root.parent), LAYER, jamey, str(out)))
        out.unlink(missing_ok=True)
    assert all(r["rows"] == count for r in ours + base), (ours, base)
    seconds, base_seconds = (
        statistics.median(r["seconds"] for r in ours),
        statistics.median(r["seconds"] for r in base),
    )
    peak, base_peak = statistics.median(r["peak"] for r in ours), statistics.median(r["peak"] for r in base)
    label = f"memories_frame of {count:,} memories"
    return [
        row(label, "seconds (vs export + read_json)", seconds, baseline=base_seconds, target="faster",
            met=seconds < base_seconds, higher_is_better=False),
        row(label, f"peak MB over the process (frame itself {ours[0]['frame_bytes'] / 1e6:.0f} MB)", peak / 1e6,
            baseline=base_peak / 1e6, target="less memory", met=peak < base_peak, higher_is_better=False),
    ]  # fmt: skip


def bench_histogram(store: MemoryStore, count: int) -> list[Row]:
    analysis = MemoryAnalysis(store)
    since, until = utcnow() - timedelta(days=366), utcnow()
    analysis.histogram(LAYER, "1d", since=since, until=until)  # warm
    ms = median_seconds(lambda: analysis.histogram(LAYER, "1d", since=since, until=until), repeat=20) * 1000
    stamps = analysis.memories_frame(LAYER, columns=["timestamp"])["timestamp"]
    by_hand = median_seconds(lambda: stamps.dt.floor("D").value_counts().sort_index(), repeat=5) * 1000
    frame = analysis.histogram(LAYER, "1d", since=since, until=until)
    assert int(frame["documents"].sum()) == count
    return [
        row(f"histogram by day, a year of {count:,}", "median ms (vs pandas on loaded timestamps)", ms,
            baseline=by_hand, target="< 100 ms", met=ms < 100, higher_is_better=False),
    ]  # fmt: skip


def bench_duplicates(store: MemoryStore, count: int) -> tuple[list[Row], int]:
    analysis = MemoryAnalysis(store)
    start = time.perf_counter()
    found = analysis.duplicates(LAYER)
    seconds = time.perf_counter() - start
    frame = analysis.memories_frame(LAYER, columns=["content"])
    start = time.perf_counter()
    keys = frame["content"].str.casefold().str.split().str.join(" ")
    sizes = keys.groupby(keys).size()
    base_seconds = time.perf_counter() - start
    repeats = int(found.attrs["repeats"])
    assert repeats == int((sizes - 1).sum()), (repeats, int((sizes - 1).sum()))
    return [
        row(f"duplicates of {count:,} ({repeats / count:.0%} repeats)",
            "seconds (vs pandas on a loaded frame, load not counted)", seconds, baseline=base_seconds,
            higher_is_better=False),
    ], repeats  # fmt: skip


def bench_dedupe(store: MemoryStore, work: Path, count: int, repeats: int) -> list[Row]:
    copy = work / "raw-dedupe"
    copy_index(store.layer_path(LAYER), copy, LAYER)
    doomed = find_duplicates(store.index(LAYER).searcher(), LAYER).doomed_ids
    raw_before = dir_size(copy)
    start = time.perf_counter()
    index = tantivy.Index.open(str(copy))
    writer = index.writer()
    for memory_id in doomed:
        writer.delete_documents_by_term(ID, memory_id)
    writer.commit()
    writer.garbage_collect_files()
    writer.wait_merging_threads()
    raw_seconds, raw_freed = time.perf_counter() - start, raw_before - dir_size(copy)
    shutil.rmtree(copy)
    from jamey_engine.memory.dedupe import dedupe_layer

    start = time.perf_counter()
    result = dedupe_layer(store, LAYER, dry_run=False)
    seconds = time.perf_counter() - start
    assert result.deleted == repeats and store.count(LAYER) == count - repeats
    freed = result.bytes_before - result.bytes_after
    label = f"dedupe {result.deleted:,} of {count:,}"
    return [
        row(label, "seconds (vs raw delete by term, which frees nothing)", seconds, baseline=raw_seconds,
            higher_is_better=False),
        row(label, f"MB freed ({result.bytes_before / 1e6:.0f} -> {result.bytes_after / 1e6:.0f} MB)", freed / 1e6,
            baseline=max(raw_freed, 0) / 1e6),
    ]  # fmt: skip


def main(quick: bool = False) -> list[Row]:
    """Build the layer, then run the four analysis benchmarks and return their rows."""
    count = _size(quick)
    rounds = 3 if quick else 1
    work = Path(tempfile.mkdtemp(prefix="bench-analysis-", dir=os.environ.get("JAMEY_BENCH_TMP")))
    rows: list[Row] = []
    started = time.perf_counter()

    def note(stage: str, new_rows: list[Row]) -> None:
        rows.extend(new_rows)
        for r in new_rows:
            print(f"   {stage}: {r['metric']} = {r['value']:.4g} (baseline {r['baseline']})", file=sys.stderr)
        print(f"   {stage} done at {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)

    root = work / "data" / "memory"
    try:
        store = MemoryStore(root, lock_timeout=60)
        try:
            rate = build_layer(store, count)
            note(f"built {count:,} memories at {rate:,.0f} docs/s", [])
            note("histogram", bench_histogram(store, count))
            duplicate_rows, repeats = bench_duplicates(store, count)
            note("duplicates", duplicate_rows)
        finally:
            store.close()
        note("memories_frame", bench_frame(root, work, count, rounds))
        store = MemoryStore(root, lock_timeout=60)
        try:
            note("dedupe", bench_dedupe(store, work, count, repeats))
        finally:
            store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    cli(main)
