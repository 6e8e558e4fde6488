"""Memory store benchmarks (issue 2), each against its baseline in the same run.

1. Concurrent durable single stores: 32 threads calling ``store`` (group commit) against the
   original pattern, open a writer, add, commit and close per memory.
2. Bulk import: ``import_jsonl`` (and ``store_batch``) against raw tantivy-py adding the same
   documents with one writer and one commit.
3. Search at 1,000,000 memories in one layer: p50 and p99 of ``MemoryStore.search`` (pointer
   check, reload, query, stored fields) against a bare tantivy searcher on the same index.
4. Prune half of those 1,000,000: seconds, and the share of the pruned half's bytes freed,
   against raw ``delete_documents_by_query`` on a copy of the same index.

Texts are 8-16 words drawn from a Zipf-distributed 20,000-word vocabulary. ``--quick`` uses
small sizes. Set JAMEY_BENCH_TMP to choose the scratch filesystem.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import tantivy

from bench.common import Row, cli, percentile, row
from jamey_engine.durations import utcnow
from jamey_engine.memory import MemoryStore
from jamey_engine.memory.generations import dir_size
from jamey_engine.memory.portable import copy_index
from jamey_engine.memory.schema import SCHEMA, TIMESTAMP

QUERIES = (
    "{w0}",
    "{w1}",
    "{w0} {w2}",
    "{w1} AND {w3}",
    '"{w0} {w1}"',
    "{w4} OR {w5} OR {w6}",
    "{w7}*",
)


def _vocabulary(rng: np.random.Generator, size: int = 20_000) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = {"".join(rng.choice(letters, size=int(rng.integers(3, 10)))) for _ in range(size)}
    return sorted(words)


def make_texts(count: int, seed: int = 3) -> list[str]:
    """``count`` synthetic memory texts (8-16 Zipf-distributed words each); fast to generate."""
    rng = np.random.default_rng(seed)
    vocab = np.array(_vocabulary(rng))
    pool_size = min(count, 100_000)
    lengths = rng.integers(8, 17, size=pool_size)
    ranks = (rng.zipf(1.2, size=int(lengths.sum())) - 1) % len(vocab)
    words = vocab[ranks]
    pool, start = [], 0
    for length in lengths:
        pool.append(" ".join(words[start : start + length]))
        start += length
    return [pool[i % pool_size] if i < pool_size else f"{pool[i % pool_size]} n{i}" for i in range(count)]


def make_timestamps(count: int, days: int = 60) -> list[datetime]:
    """``count`` timestamps spread evenly over the last ``days`` days, oldest first."""
    now = utcnow()
    step = timedelta(days=days) / count
    return [now - timedelta(days=days) + step * i for i in range(count)]


# -- 1. concurrent durable single stores ------------------------------------------------------
def _store_round(store: MemoryStore, threads: int, per_thread: int) -> float:
    """memories/s of ``threads`` threads each storing ``per_thread`` memories one by one."""
    barrier = threading.Barrier(threads + 1)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            store.store("working", f"writer {n} remembers item {i} about disk latency")

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in pool:
        thread.join()
    return threads * per_thread / (time.perf_counter() - start)


def _per_memory_commit_round(index: tantivy.Index, count: int) -> float:
    """memories/s of the original pattern: open a writer, add, commit, close, per memory."""
    now = utcnow()
    start = time.perf_counter()
    for i in range(count):
        writer = index.writer()
        writer.add_document(
            tantivy.Document(id=str(uuid.uuid4()), content=f"memory {i}", timestamp=now, added=0)
        )
        writer.commit()
        writer.wait_merging_threads()
    return count / (time.perf_counter() - start)


def bench_concurrent_stores(work: Path, quick: bool) -> list[Row]:
    """Rounds of ours and of the baseline alternate, so both see the same (noisy) machine."""
    threads, per_thread = 32, (5 if quick else 40)
    baseline_count = 10 if quick else 40
    rounds = 1 if quick else 5
    store = MemoryStore(work / "concurrent", lock_timeout=60)
    index_path = work / "per-memory-commit"
    index_path.mkdir()
    index = tantivy.Index(SCHEMA, path=str(index_path))
    ours, base = [], []
    try:
        store.sizes()
        for _ in range(rounds):
            ours.append(_store_round(store, threads, per_thread))
            base.append(_per_memory_commit_round(index, baseline_count))
        commits = store.writer("working").commits
        stored = store.count("working")
    finally:
        store.close()
    value, baseline = statistics.median(ours), statistics.median(base)
    assert stored == rounds * threads * per_thread, "a store was lost"
    return [
        row(
            "concurrent durable stores (32 writers)",
            f"memories/s ({commits} commits for {stored})",
            value,
            baseline=baseline,
            target=">= 30x writer+commit per memory",
            met=value >= 30 * baseline,
        )
    ]


# -- 2. bulk import ----------------------------------------------------------------------------
def bench_bulk_import(work: Path, quick: bool) -> list[Row]:
    count = 5_000 if quick else 100_000
    rounds = 1 if quick else 3
    texts = make_texts(count, seed=5)
    stamps = make_timestamps(count)
    source = work / "import.jsonl"
    with open(source, "w") as out:
        for text, stamp in zip(texts, stamps, strict=True):
            out.write(json.dumps({"content": text, "timestamp": stamp.isoformat()}) + "\n")
    items = [{"content": t, "timestamp": s} for t, s in zip(texts, stamps, strict=True)]
    ours, batch, raw = [], [], []
    for attempt in range(rounds):
        store = MemoryStore(work / f"import-{attempt}", lock_timeout=60)
        try:
            store.sizes()
            start = time.perf_counter()
            store.import_jsonl("semantic", source)
            ours.append(count / (time.perf_counter() - start))
            start = time.perf_counter()
            store.store_batch("episodic", items)
            batch.append(count / (time.perf_counter() - start))
            assert store.count("semantic") == count and store.count("episodic") == count
        finally:
            store.close()
        raw_path = work / f"raw-{attempt}"
        raw_path.mkdir()
        start = time.perf_counter()
        index = tantivy.Index(SCHEMA, path=str(raw_path))
        writer = index.writer()
        for text, stamp in zip(texts, stamps, strict=True):
            writer.add_document(
                tantivy.Document(id=str(uuid.uuid4()), content=text, timestamp=stamp, added=0)
            )
        writer.commit()
        writer.wait_merging_threads()
        raw.append(count / (time.perf_counter() - start))
        shutil.rmtree(raw_path)
        shutil.rmtree(work / f"import-{attempt}")
    baseline = statistics.median(raw)
    return [
        row(
            f"bulk import ({count:,} docs)",
            "docs/s, import_jsonl from a file",
            statistics.median(ours),
            baseline=baseline,
            target=">= 70% of raw tantivy-py",
            met=statistics.median(ours) >= 0.7 * baseline,
        ),
        row(
            f"bulk import ({count:,} docs)",
            "docs/s, store_batch from a list",
            statistics.median(batch),
            baseline=baseline,
            target=">= 70% of raw tantivy-py",
            met=statistics.median(batch) >= 0.7 * baseline,
        ),
    ]


# -- 3 and 4. search and prune at a million ----------------------------------------------------
STOP_WORDS = 100  # the most frequent words of the vocabulary, as a search engine's stop words


def stop_words(seed: int = 3) -> set[str]:
    """The STOP_WORDS most frequent words of ``make_texts(seed=seed)`` (Zipf rank order)."""
    return set(_vocabulary(np.random.default_rng(seed))[:STOP_WORDS])


def _queries(store: MemoryStore, exclude: set[str], picks: int = 40) -> list[str]:
    """Queries (see QUERIES) built from the words of random stored memories, minus ``exclude``."""
    searcher = store.index("long_term").searcher()
    total = int(searcher.num_docs)
    rng = np.random.default_rng(17)
    queries: list[str] = []
    while len(queries) < picks * len(QUERIES):
        address = searcher.search(tantivy.Query.all_query(), 1, offset=int(rng.integers(0, total - 1))).hits
        text = str(searcher.doc(address[0][1]).get_first("content"))
        words = [w for w in text.split() if w not in exclude and not w[1:].isdigit()]
        if not words:
            continue  # a memory of stop words only: pick another
        while len(words) < 8:
            words = words + words
        queries.extend(q.format(**{f"w{i}": words[i] for i in range(8)}) for q in QUERIES)
    return queries


def _timings(
    store: MemoryStore, queries: list[str], samples: int
) -> tuple[list[float], list[float], list[float]]:
    """Wall ms and CPU ms of MemoryStore.search, and wall ms of a bare tantivy searcher, per sample."""
    orders = ("score", "newest")
    wall, cpu, raw = [], [], []
    for i in range(samples):
        query, order = queries[i % len(queries)], orders[(i // len(queries)) % 2]
        start, start_cpu = time.perf_counter(), time.thread_time()
        store.search("long_term", query, limit=10, order=order)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)
    index = store.index("long_term")
    searcher = index.searcher()
    for i in range(samples):
        query, order = queries[i % len(queries)], orders[(i // len(queries)) % 2]
        start = time.perf_counter()
        parsed = index.parse_query(query, ["content"])
        if order == "newest":
            hits = searcher.search(parsed, 10, order_by_field=TIMESTAMP, order=tantivy.Order.Desc).hits
        else:
            hits = searcher.search(parsed, 10).hits
        [searcher.doc(address) for _, address in hits]
        raw.append((time.perf_counter() - start) * 1000)
    return wall, cpu, raw


def bench_search(store: MemoryStore, quick: bool) -> list[Row]:
    """Search latency: queries of content words (stop words left out, as users type them), and,
    for the record, the same shapes built from the most common words."""
    samples = 200 if quick else 1000
    wall, cpu, raw = _timings(store, _queries(store, stop_words()), samples)
    common_wall, common_cpu, common_raw = _timings(store, _queries(store, set()), samples // 4)
    label = f"search at {store.count('long_term'):,} memories"
    p99 = percentile(wall, 99)
    return [
        row(label, "p50 ms", percentile(wall, 50), baseline=percentile(raw, 50), higher_is_better=False),
        row(label, "p99 ms", p99, baseline=percentile(raw, 99), target="p99 <= 5 ms", met=p99 <= 5.0,
            higher_is_better=False),
        row(label, "p99 CPU ms (this thread; load-independent)", percentile(cpu, 99), target="p99 <= 5 ms",
            met=percentile(cpu, 99) <= 5.0, higher_is_better=False),
        row(label, "p99 ms, queries of stop words (no target)", percentile(common_wall, 99),
            baseline=percentile(common_raw, 99), higher_is_better=False),
        row(label, "p99 CPU ms, queries of stop words (no target)", percentile(common_cpu, 99),
            higher_is_better=False),
    ]  # fmt: skip


def _raw_delete_baseline(store: MemoryStore, work: Path, cutoff: datetime) -> tuple[float, float]:
    """Seconds and bytes freed by delete_documents_by_query on a copy of the layer."""
    copy = work / "raw-delete"
    copy_index(store.layer_path("long_term"), copy, "long_term")
    before = dir_size(copy)
    start = time.perf_counter()
    index = tantivy.Index.open(str(copy))
    writer = index.writer()
    query = tantivy.Query.range_query(
        SCHEMA, TIMESTAMP, tantivy.FieldType.Date, None, cutoff, include_upper=False
    )
    writer.delete_documents_by_query(query)
    writer.commit()
    writer.garbage_collect_files()
    writer.wait_merging_threads()
    seconds = time.perf_counter() - start
    freed = before - dir_size(copy)
    shutil.rmtree(copy)
    return seconds, freed


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_prune(store: MemoryStore, work: Path) -> list[Row]:
    older_than = timedelta(days=30)
    cutoff = utcnow() - older_than
    raw_seconds, raw_freed = _raw_delete_baseline(store, work, cutoff)
    docs_before = store.count("long_term")
    start, cpu_start = time.perf_counter(), _process_cpu()
    [result] = store.prune(older_than, ["long_term"])
    seconds, cpu = time.perf_counter() - start, _process_cpu() - cpu_start
    pruned_half_bytes = result.bytes_before * result.deleted / docs_before
    freed = result.bytes_before - result.bytes_after
    share, raw_share = freed / pruned_half_bytes, raw_freed / pruned_half_bytes
    label = f"prune {result.deleted:,} of {docs_before:,}"
    return [
        row(label, f"seconds (process CPU {cpu:.1f} s on 2 cores)", seconds, baseline=raw_seconds, target="<= 15 s", met=seconds <= 15,
            higher_is_better=False),
        row(label, f"share of pruned bytes freed ({result.bytes_before / 1e6:.0f} -> {result.bytes_after / 1e6:.0f} MB)",
            share, baseline=raw_share, target=">= 80% freed", met=share >= 0.8),
    ]  # fmt: skip


def build_layer(store: MemoryStore, count: int) -> float:
    """Fill long_term with ``count`` memories through the bulk path; returns docs/s."""
    texts = make_texts(count)
    stamps = make_timestamps(count)
    start = time.perf_counter()
    chunk = 250_000
    for offset in range(0, count, chunk):
        store.store_batch(
            "long_term",
            list(zip(texts[offset : offset + chunk], stamps[offset : offset + chunk], strict=True)),
        )
    return count / (time.perf_counter() - start)


def main(quick: bool = False) -> list[Row]:
    """Run the four memory benchmarks (medians where repeated) and return their rows."""
    work = Path(tempfile.mkdtemp(prefix="bench-memory-", dir=os.environ.get("JAMEY_BENCH_TMP")))
    rows: list[Row] = []
    started = time.perf_counter()

    def note(stage: str, new_rows: list[Row]) -> None:
        rows.extend(new_rows)
        for r in new_rows:
            print(f"   {stage}: {r['metric']} = {r['value']:.4g} (baseline {r['baseline']})", file=sys.stderr)
        print(f"   {stage} done at {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)

    try:
        note("concurrent stores", bench_concurrent_stores(work, quick))
        note("bulk import", bench_bulk_import(work, quick))
        store = MemoryStore(work / "million", lock_timeout=60)
        try:
            rate = build_layer(store, 20_000 if quick else 1_000_000)
            note(f"built the layer at {rate:,.0f} docs/s", [])
            note("search", bench_search(store, quick))
            note("prune", bench_prune(store, work))
        finally:
            store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    cli(main)
