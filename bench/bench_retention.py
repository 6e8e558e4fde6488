"""Retention benchmark (issue 14): a 1,000,000-memory layer with a ``max_bytes`` cap at half its size.

Measured through ``Engine.apply_retention`` (policy in SQLite, recorded in the operation log):
seconds to apply, the final bytes against the cap (the target is 90% of it), and the share of
the memories kept that are the newest ones (target 100%). The baseline, in the same run on a
hard-linked copy of the same layer, is one ``prune --older-than`` chosen by hand to land on the
same size: the memories are spread evenly over 60 days, so keeping 45% of the bytes means
keeping the last 27 days.

``--quick`` uses 20,000 memories. Set JAMEY_BENCH_TMP to choose the scratch filesystem.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import tantivy

from bench.bench_memory import make_texts, make_timestamps
from bench.common import Row, cli, row
from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.memory import MemoryStore
from jamey_engine.memory.retention import TARGET_FRACTION
from jamey_engine.memory.schema import SCHEMA, TIMESTAMP

LAYER = "long_term"
DAYS = 60


def _count_since(store: MemoryStore, moment: datetime) -> int:
    searcher = store.index(LAYER).searcher()
    query = tantivy.Query.range_query(SCHEMA, TIMESTAMP, tantivy.FieldType.Date, moment, None)
    return int(searcher.search(query, 1, count=True).count)  # type: ignore[attr-defined]


def _kth_newest(store: MemoryStore, keep: int, low: datetime, high: datetime) -> datetime:
    """The latest whole second t with at least ``keep`` memories stamped at or after it."""
    lo, hi = int(low.timestamp()) - 1, int(high.timestamp()) + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _count_since(store, datetime.fromtimestamp(mid).astimezone()) >= keep:
            lo = mid
        else:
            hi = mid
    return datetime.fromtimestamp(lo).astimezone()


def _build(engine: Engine, count: int) -> None:
    texts, stamps = make_texts(count), make_timestamps(count, days=DAYS)
    for offset in range(0, count, 250_000):
        chunk = slice(offset, offset + 250_000)
        engine.memory.store_batch(LAYER, list(zip(texts[chunk], stamps[chunk], strict=True)))


def main(quick: bool = False) -> list[Row]:
    """Build the layer, copy it, apply a half-size cap to one and the hand-picked prune to the other."""
    count = 20_000 if quick else 1_000_000
    work = Path(tempfile.mkdtemp(prefix="bench-retention-", dir=os.environ.get("JAMEY_BENCH_TMP")))
    started = time.perf_counter()
    try:
        engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(work / "data"), "JAMEY_LOCK_TIMEOUT": "60"}))
        baseline_store = None
        try:
            _build(engine, count)
            engine.memory.close()
            del engine.__dict__["memory"]
            shutil.copytree(work / "data" / "memory", work / "copy", copy_function=os.link)
            print(f"   built {count:,} memories at {time.perf_counter() - started:.0f}s", file=sys.stderr)
            before = engine.memory.layer_size(LAYER)
            cap = before.bytes // 2
            newest = engine.memory.search(LAYER, "*", limit=1, order="newest")[0].timestamp
            engine.retention.set(LAYER, max_bytes=cap, actor="bench")

            start = time.perf_counter()
            run = engine.apply_retention(actor="bench")
            seconds = time.perf_counter() - start
            [layer] = run.layers
            after = engine.memory.layer_size(LAYER)
            kept = after.documents

            baseline_store = MemoryStore(work / "copy", lock_timeout=60)
            oldest = newest - timedelta(days=DAYS + 1)
            threshold = _kth_newest(baseline_store, kept, oldest, newest)
            newest_kept = _count_since(engine.memory, threshold)
            share = min(newest_kept, kept) / kept if kept else 1.0

            by_hand = timedelta(days=DAYS * TARGET_FRACTION / 2)  # 45% of 60 days: 27 days
            start = time.perf_counter()
            [pruned] = baseline_store.prune(by_hand, [LAYER])
            baseline_seconds = time.perf_counter() - start
        finally:
            if baseline_store is not None:
                baseline_store.close()
            engine.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    label = f"cap {count:,} memories at half their bytes"
    mb = 1e6
    return [
        row(label, "seconds to apply (baseline: prune --older-than 27d)", seconds, baseline=baseline_seconds,
            higher_is_better=False),
        row(label, f"final MB vs cap {cap / mb:.1f} MB (baseline: the hand-picked prune's)",
            layer.bytes_after / mb, baseline=pruned.bytes_after / mb, target="<= 90% of cap",
            met=layer.bytes_after <= TARGET_FRACTION * cap, higher_is_better=False),
        row(label, "final bytes / cap", layer.bytes_after / cap, target="<= 0.90",
            met=layer.bytes_after <= TARGET_FRACTION * cap),
        row(label, f"share of kept memories that are the newest ({kept:,} kept, {layer.passes} pass(es))",
            share, target="100%", met=share == 1.0),
        row(label, "memories removed (baseline: the hand-picked prune's)", float(layer.deleted),
            baseline=float(pruned.deleted)),
    ]  # fmt: skip


if __name__ == "__main__":
    cli(main)
