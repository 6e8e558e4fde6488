"""Write-ahead log benchmarks (issue 20), each against its baselines in the same run.

1. Concurrent durable stores, 32 writers: ``store`` with the log (JAMEY_WAL=on) against the
   commit-per-group path (JAMEY_WAL=off, the group commit before this issue) and against
   SQLite FTS5 (WAL mode, synchronous=FULL, one transaction per memory, the threads
   queued on one connection). Rounds alternate so all three see the same (noisy) machine; p99 store latency.
2. The limit: 4 KiB appends + fdatasync per second on the same filesystem.
3. Search p99 with memories in the in-memory tier against the same layer fully flushed.
4. Replay of a 100,000-record log on open.
5. ``POST /memories`` from 32 connections, with the log and with JAMEY_WAL=off.
6. Durable stores to one layer from 1 and from 2 writer processes (32 threads in all, each
   process with its own segment stream, JAMEY_FLUSHER=process, a ``jamey flusher`` running),
   against 2 processes whose appends are serialised by one cross-process lock (the design
   before issue 31, emulated by wrapping each append in a flock): stores/s and p99.

``--quick`` uses small sizes. Set JAMEY_BENCH_TMP to choose the scratch filesystem (the same
one for every measurement here).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.bench_memory import make_texts, make_timestamps, stop_words
from bench.common import Row, cli, percentile, row
from jamey_engine.memory import MemoryStore
from jamey_engine.memory.wal import LayerLog, encode_add

THREADS = 32


def _store_round(store: MemoryStore, per_thread: int) -> tuple[float, list[float]]:
    """memories/s of 32 threads each storing ``per_thread`` memories, and each store's ms."""
    barrier = threading.Barrier(THREADS + 1)
    latencies: list[list[float]] = [[] for _ in range(THREADS)]

    def worker(n: int) -> None:
        mine = latencies[n]
        barrier.wait()
        for i in range(per_thread):
            start = time.perf_counter()
            store.store("working", f"writer {n} remembers item {i} about disk latency")
            mine.append((time.perf_counter() - start) * 1000)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in pool:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in pool:
        thread.join()
    return THREADS * per_thread / (time.perf_counter() - start), [x for xs in latencies for x in xs]


def _fts5_round(path: Path, per_thread: int) -> tuple[float, list[float]]:
    """The same with SQLite FTS5: WAL, synchronous=FULL, a transaction per memory. The threads
    share one connection behind a lock (a queue, not SQLite's sleeping busy handler: the
    fairest, fastest way to serialize them in one process)."""
    barrier = threading.Barrier(THREADS + 1)
    latencies: list[list[float]] = [[] for _ in range(THREADS)]
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=FULL")
    lock = threading.Lock()

    def worker(n: int) -> None:
        mine = latencies[n]
        barrier.wait()
        for i in range(per_thread):
            start = time.perf_counter()
            with lock:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT INTO memories(id, content, ts) VALUES (?, ?, ?)",
                    (
                        f"{n}-{i}-{time.time_ns()}",
                        f"writer {n} remembers item {i} about disk latency",
                        time.time(),
                    ),
                )
                conn.execute("COMMIT")
            mine.append((time.perf_counter() - start) * 1000)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in pool:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in pool:
        thread.join()
    conn.close()
    return THREADS * per_thread / (time.perf_counter() - start), [x for xs in latencies for x in xs]


def fdatasync_rate(work: Path, seconds: float = 2.0) -> tuple[float, float]:
    """4 KiB append + fdatasync per second on ``work``'s filesystem, and the p50 ms of one."""
    path = work / "fdatasync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    block = b"x" * 4096
    times = []
    try:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            start = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            times.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()
    return len(times) / sum(times), statistics.median(times) * 1000


def bench_concurrent_stores(work: Path, quick: bool) -> list[Row]:
    per_thread = 10 if quick else 100
    old_per_thread = 3 if quick else 10
    rounds = 1 if quick else 5
    wal_store = MemoryStore(work / "wal", lock_timeout=60)
    old_store = MemoryStore(work / "old", lock_timeout=60, wal=False)
    fts = work / "fts5.db"
    conn = sqlite3.connect(fts, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE VIRTUAL TABLE memories USING fts5(id UNINDEXED, content, ts UNINDEXED)")
    conn.close()
    ours, old, lite = [], [], []
    ours_ms: list[float] = []
    old_ms: list[float] = []
    lite_ms: list[float] = []
    try:
        wal_store.sizes()
        old_store.sizes()
        for _ in range(rounds):
            rate, ms = _store_round(wal_store, per_thread)
            ours.append(rate)
            ours_ms += ms
            rate, ms = _store_round(old_store, old_per_thread)
            old.append(rate)
            old_ms += ms
            rate, ms = _fts5_round(fts, per_thread)
            lite.append(rate)
            lite_ms += ms
        appends = sum(w.appends for w in wal_store.logs.log_writers.values())
        stored = wal_store.count("working")
    finally:
        wal_store.close()
        old_store.close()
    assert stored == rounds * THREADS * per_thread, "a store was lost"
    value, base, fts5 = statistics.median(ours), statistics.median(old), statistics.median(lite)
    p99 = percentile(ours_ms, 99)
    label = "durable stores, 32 writers"
    rate, sync_ms = fdatasync_rate(work)
    return [
        row(label, f"memories/s, log (vs group commit; {appends} fdatasyncs for {stored})", value,
            baseline=base, target=">= 10x group commit", met=value >= 10 * base),
        row(label, "memories/s, log (vs SQLite FTS5, WAL, synchronous=FULL)", value, baseline=fts5,
            target=">= 2x FTS5", met=value >= 2 * fts5),
        row(label, "p99 store ms, log (vs group commit p99)", p99, baseline=percentile(old_ms, 99),
            target="<= 5 ms", met=p99 <= 5.0, higher_is_better=False),
        row(label, "p99 store ms, SQLite FTS5 (no target)", percentile(lite_ms, 99), higher_is_better=False),
        row("the disk's limit", "4 KiB append + fdatasync per s (p50 ms as baseline)", rate, baseline=None),
        row("the disk's limit", "p50 ms of one append + fdatasync", sync_ms, higher_is_better=False),
        row("the disk's limit", "log fdatasyncs per s in the store run (share of the limit)",
            appends / (stored / value), baseline=rate),
    ]  # fmt: skip


def bench_search_with_tier(work: Path, quick: bool) -> list[Row]:
    """Search p99 with ``in_ram`` of ``total`` memories still in the in-memory tier, against a
    copy of the same layer with all of them flushed. The two stores share the first
    ``total - in_ram`` memories (hard-linked from one build) and the queries alternate between
    them, so both see the same (noisy) machine."""
    total, in_ram = (100_000, 5_000) if quick else (1_000_000, 50_000)
    texts, stamps = make_texts(total), make_timestamps(total)
    flushed = total - in_ram
    base = MemoryStore(work / "search-base", lock_timeout=60)
    for offset in range(0, flushed, 250_000):
        end = min(offset + 250_000, flushed)
        base.store_batch("long_term", list(zip(texts[offset:end], stamps[offset:end], strict=True)))
    base.snapshot(work / "search-snap")
    base.close()
    tiered = MemoryStore(work / "search-tier", lock_timeout=60, flush_interval=3600, flush_docs=10 * in_ram)
    plain = MemoryStore(work / "search-flushed", lock_timeout=60, flush_interval=3600)
    try:
        for store in (tiered, plain):
            store.restore_layers(work / "search-snap")
        for offset in range(flushed, total, 250):  # small batches: through the log
            end = min(offset + 250, total)
            tiered.store_batch("long_term", list(zip(texts[offset:end], stamps[offset:end], strict=True)))
        plain.store_batch("long_term", list(zip(texts[flushed:], stamps[flushed:], strict=True)))
        assert tiered.index("long_term").searcher().num_docs == flushed
        assert tiered.count("long_term") == plain.count("long_term") == total
        from bench.bench_memory import _queries

        queries = _queries(plain, stop_words())
        samples = 300 if quick else 1000
        timings: dict[int, list[float]] = {0: [], 1: []}
        for i in range(2 * samples):
            store = (tiered, plain)[i % 2]
            query, order = queries[(i // 2) % len(queries)], ("score", "newest")[(i // 2) % 2]
            start = time.perf_counter()
            store.search("long_term", query, limit=10, order=order)
            if i >= 40:  # the first rounds warm the caches and the RAM tier's index
                timings[i % 2].append((time.perf_counter() - start) * 1000)
        assert tiered.index("long_term").searcher().num_docs == flushed  # still in RAM
    finally:
        tiered.close()
        plain.close()
    with_tier, flushed_only = timings[0], timings[1]
    label = f"search at {total:,} memories, {in_ram:,} in the in-memory tier"
    p99, base_p99 = percentile(with_tier, 99), percentile(flushed_only, 99)
    return [
        row(label, "p50 ms (vs fully flushed)", percentile(with_tier, 50), baseline=percentile(flushed_only, 50),
            higher_is_better=False),
        row(label, "p99 ms (vs fully flushed)", p99, baseline=base_p99, target="<= 1.5x flushed",
            met=p99 <= 1.5 * base_p99, higher_is_better=False),
    ]  # fmt: skip


def bench_replay(work: Path, quick: bool) -> list[Row]:
    """Seconds to open a layer whose log holds ``count`` single-memory records."""
    count = 10_000 if quick else 100_000
    root = work / "replay"
    store = MemoryStore(root)
    store.sizes()
    store.close()
    texts = make_texts(count)
    wal = LayerLog(root / "working", "working", 10.0)
    now = datetime.now(UTC)
    chunk = []
    for i, text in enumerate(texts):
        chunk.append(encode_add([(f"00000000-0000-4000-8000-{i:012d}", text, now)]))
        if len(chunk) == 1000:
            wal.append(b"".join(chunk))
            chunk = []
    if chunk:
        wal.append(b"".join(chunk))
    wal.close()
    start = time.perf_counter()
    reopened = MemoryStore(root)
    documents = reopened.count("working")
    seconds = time.perf_counter() - start
    reopened.close()
    assert documents == count
    return [row(f"replay of a {count:,}-record log on open", "seconds", seconds, target="seconds")]


def bench_http_store(work: Path, quick: bool) -> list[Row]:
    """POST /memories from 32 connections (wrk, as in bench_service) with the log on, against
    the same server with JAMEY_WAL=off."""
    import json

    from bench.bench_service import Load, Server, make_keys, median_of

    seconds, repeats = (1.0, 1) if quick else (4.0, 3)
    bodies = [json.dumps({"layer": "working", "content": f"served memory {n}"}) for n in range(1000)]
    results = {}
    for mode in ("on", "off"):
        data_dir = work / f"http-{mode}"
        data_dir.mkdir()
        key = make_keys(data_dir)["writer"]
        previous = os.environ.get("JAMEY_WAL")
        os.environ["JAMEY_WAL"] = mode
        try:
            server = Server(data_dir)
        finally:
            if previous is None:
                os.environ.pop("JAMEY_WAL")
            else:
                os.environ["JAMEY_WAL"] = previous
        try:
            load = Load(server, work)
            load.script("wal-store", "POST", ["/memories"], 1, 32, key, bodies)
            runs = [
                load.script("wal-store", "POST", ["/memories"], seconds, 32, key, bodies)
                for _ in range(repeats)
            ]
            results[mode] = (median_of(runs, "rps"), median_of(runs, "p99_ms"))
        finally:
            server.stop()
    name = "service: POST /memories (32 conns, durable)"
    return [
        row(name, "stores/s, log (vs JAMEY_WAL=off)", results["on"][0], baseline=results["off"][0]),
        row(name, "p99 ms, log (vs JAMEY_WAL=off)", results["on"][1], baseline=results["off"][1],
            higher_is_better=False),
    ]  # fmt: skip


def process_writer(root: str, threads: int, seconds: float, serialise: bool) -> None:
    """Run in a child: store to one layer from ``threads`` threads for ``seconds`` after a line
    on stdin, then print {"count", "ms"} as JSON. With ``serialise``, every append holds one
    cross-process flock, as the single shared log did."""
    import fcntl
    import json

    if serialise:
        real_append = LayerLog.append
        lock_fd = os.open(Path(root) / "working" / ".bench-append.lock", os.O_RDWR | os.O_CREAT, 0o644)
        guard = threading.Lock()

        def append(self: LayerLog, data: bytes) -> int:
            with guard:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                try:
                    return real_append(self, data)
                finally:
                    fcntl.flock(lock_fd, fcntl.LOCK_UN)

        LayerLog.append = append  # type: ignore[method-assign]
    store = MemoryStore(Path(root), lock_timeout=60, flusher="process")
    store.store("working", "warm")
    print("ready", flush=True)
    sys.stdin.readline()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    end = time.perf_counter() + seconds

    def worker(n: int) -> None:
        mine = latencies[n]
        i = 0
        while time.perf_counter() < end:
            start = time.perf_counter()
            store.store("working", f"process writer {os.getpid()} thread {n} item {i}")
            mine.append((time.perf_counter() - start) * 1000)
            i += 1

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    every = [x for xs in latencies for x in xs]
    print(json.dumps({"count": len(every), "ms": every}), flush=True)
    store.close()


def _process_round(root: Path, processes: int, seconds: float, serialise: bool) -> tuple[float, list[float]]:
    import json
    import subprocess

    code = (
        "from bench.bench_wal import process_writer; "
        f"process_writer({str(root)!r}, {THREADS // processes}, {seconds}, {serialise})"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        for _ in range(processes)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    count, ms = 0, []
    for child in children:
        out, _ = child.communicate(timeout=300)
        result = json.loads(out.strip().splitlines()[-1])
        count += result["count"]
        ms += result["ms"]
    return count / seconds, ms


def bench_process_stores(work: Path, quick: bool) -> list[Row]:
    """Stores/s and p99 of 1 and 2 writer processes on one layer, a flusher process running."""
    import subprocess

    from jamey_engine.memory.flusher import holder

    seconds, rounds = (2.0, 1) if quick else (5.0, 3)
    data = work / "procs"
    data.mkdir(mode=0o700)
    root = data / "memory"
    MemoryStore(root).close()
    flusher = subprocess.Popen(
        [sys.executable, "-m", "jamey_engine", "flusher"],
        env={**os.environ, "JAMEY_DATA_DIR": str(data), "JAMEY_FLUSH_INTERVAL": "1"},
        cwd=Path(__file__).resolve().parents[1],
    )
    rates: dict[str, list[float]] = {"one": [], "two": [], "locked": []}
    ms: dict[str, list[float]] = {"one": [], "two": [], "locked": []}
    try:
        deadline = time.monotonic() + 120
        while holder(root) != flusher.pid:
            assert time.monotonic() < deadline and flusher.poll() is None, "the flusher did not start"
            time.sleep(0.1)
        for _ in range(rounds):  # alternate, so all three see the same (noisy) machine
            for name, processes, serialise in (("one", 1, False), ("two", 2, False), ("locked", 2, True)):
                rate, lat = _process_round(root, processes, seconds, serialise)
                rates[name].append(rate)
                ms[name] += lat
        rss = _rss_kib(flusher.pid)
    finally:
        flusher.terminate()
        flusher.wait(timeout=60)
    one, two, locked = (statistics.median(rates[k]) for k in ("one", "two", "locked"))
    label = "durable stores to one layer, 32 threads in all, flusher process"
    return [
        row(label, "stores/s, 2 writer processes (vs 1)", two, baseline=one, target=">= 1.5x",
            met=two >= 1.5 * one),
        row(label, "stores/s, 2 processes, own streams (vs one shared append lock, emulated)", two,
            baseline=locked),
        row(label, "p99 store ms, 2 processes (vs 1)", percentile(ms["two"], 99),
            baseline=percentile(ms["one"], 99), higher_is_better=False),
        row(label, "p99 store ms, 2 processes (vs one shared append lock)", percentile(ms["two"], 99),
            baseline=percentile(ms["locked"], 99), higher_is_better=False),
        row(label, "flusher RSS MiB after the runs", rss / 1024, higher_is_better=False),
    ]  # fmt: skip


def _rss_kib(pid: int) -> float:
    """VmRSS of ``pid`` in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def main(quick: bool = False) -> list[Row]:
    """Run the write-ahead log benchmarks and return their rows."""
    work = Path(tempfile.mkdtemp(prefix="bench-wal-", dir=os.environ.get("JAMEY_BENCH_TMP")))
    rows: list[Row] = []
    started = time.perf_counter()
    try:
        for stage, fn in (
            ("concurrent stores", bench_concurrent_stores),
            ("replay", bench_replay),
            ("search with the tier", bench_search_with_tier),
            ("http stores", bench_http_store),
            ("process stores", bench_process_stores),
        ):
            if os.environ.get("JAMEY_BENCH_ONLY") and stage not in os.environ["JAMEY_BENCH_ONLY"]:
                continue
            new_rows = fn(work, quick)
            rows.extend(new_rows)
            for r in new_rows:
                print(
                    f"   {stage}: {r['metric']} = {r['value']:.4g} (baseline {r['baseline']})",
                    file=sys.stderr,
                )
            print(f"   {stage} done at {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    cli(main)
