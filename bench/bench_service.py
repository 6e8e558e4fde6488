"""Service benchmarks against a real uvicorn worker, driven by wrk (one C thread: it leaves the
cores to the server; see bench/wrk.py).

1. Auth + rate-limit overhead: ``GET /whoami`` with a key (verify from cache, two moving-window
   limit checks, metrics) against ``GET /bench/open``, the same handler with no key, on the same
   server. Target: keyed >= 85% of unkeyed requests/s.
2. ``POST /memories`` with 32 connections: durable stores/s (each answer arrives after the
   write that holds it is durable), p99 (target <= 20 ms, issue 31), p99.9 and the server's CPU
   per store (target <= 1.5x in-process). Baseline: 32 threads calling ``MemoryStore.store`` in
   process (no HTTP), on another data dir, run round by round with the HTTP runs (in-process,
   then HTTP, three times). Target: >= 60% of the baseline.
3. ``GET /memories/search`` at 100,000 memories, 8 connections: requests/s, p99 and the server's
   CPU per request. Baseline: in-process ``MemoryStore.search`` from 8 threads, and its CPU per
   call. Targets (issue 15): >= 60% of the in-process rate; CPU per request <= 1.5 x (in-process
   search CPU + keyed ``/whoami`` CPU, from benchmark 1).
4. The GC pauses (issue 31): the stores at 32 and 8 connections with the start-up heap frozen
   (the default) against a server with ``JAMEY_GC_FREEZE=0``, and a larger young generation
   (``JAMEY_GC_THRESHOLD``) against Python's 700: p99, p99.9 and the serving process's gen-2
   collections (count, total and longest pause, from a ``gc.callbacks`` timer, ``/bench/gc``).
5. granian against uvicorn: keyed search and store, 32 connections each.
6. Redis counters: stores over HTTP with one and two workers on ``redis://`` against one worker
   on ``memory://`` (target: two workers on Redis >= 1.2x).
7. The fast path against the FastAPI routes (the same app with it off).
8. ``jamey serve``'s HTTP protocol, one socket write per answer (service/http_protocol.py),
   against uvicorn's httptools protocol: keyed search and store, 32 connections, servers
   alternating (only with ``JAMEY_BENCH_SERVICE_ONLY=writes``).
9. Stores served with ``jamey serve``'s flusher process (every server here has it, as deployed)
   against the flush in the serving process (``JAMEY_FLUSHER=inline``): in the full run, and
   alternating with the in-process baseline (only with ``JAMEY_BENCH_SERVICE_ONLY=flusher``).

10. The access log on (``JAMEY_LOG_LEVEL=info``, the default, as every server here runs)
    against off (``JAMEY_LOG_LEVEL=warning``): stores, 32 connections.
11. The hot requests answered whole by ``jamey serve``'s protocol (``ServiceProtocol``) against
    the same protocol running every request as uvicorn's ASGI cycle (``CoalescingProtocol``):
    keyed search and store, 32 connections, servers alternating, with the in-process store
    baseline (only with ``JAMEY_BENCH_SERVICE_ONLY=whole``).

Keys carry per-second limits sized not to refuse (the limiter still does all its work).
Run alone: ``.venv/bin/python -m bench.bench_service [--quick]``. With
``JAMEY_BENCH_SERVICE_ONLY=redis`` only benchmark 6 runs (its three servers interleaved, round
by round, on fresh copies of one seeded data dir, as in the full run).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench import wrk
from bench.common import Row, copy_of, percentile, row

ROOT = Path(__file__).resolve().parents[1]
KEY_LIMIT = "50000/second"
GLOBAL_LIMIT = "100000/second"
SEARCH_CONCURRENCY = 8
REDIS_URL = os.environ.get("JAMEY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# The young generation's threshold tried against Python's 700 (JAMEY_GC_THRESHOLD).
GC_THRESHOLD_TRIED = 7000
WORDS = [
    f"{a}{b}"
    for a in ("ka", "lo", "mi", "ne", "pu", "ro", "sa", "ti", "vu", "ze", "qa", "wo")
    for b in (
        "ber",
        "dan",
        "fel",
        "gor",
        "hin",
        "jul",
        "kor",
        "lim",
        "mur",
        "nox",
        "pel",
        "rud",
        "sim",
        "tov",
    )
]


class GcTimer:
    """Counts and times the collector's runs in the serving process (a ``gc.callbacks`` timer).

    ``GET /bench/gc`` (bench servers only) answers the counts and pauses since the last call, by
    generation, and starts over: the benchmark reads it before and after a load run.
    """

    def __init__(self) -> None:
        self.started = 0.0
        self.reset()

    def reset(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def install(self) -> None:
        import gc

        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self.started)

    def report(self) -> dict[str, Any]:
        import collections
        import gc

        pauses, counts = self.pauses, gc.get_count()
        self.reset()
        objects = gc.get_objects()
        types = collections.Counter(type(o).__qualname__ for o in objects).most_common(12)
        return {
            f"gen{gen}": {
                "count": len(times),
                "total_ms": sum(times) * 1000,
                "max_ms": max(times, default=0.0) * 1000,
            }
            for gen, times in pauses.items()
        } | {
            "tracked_objects": len(objects),
            "top_types": dict(types),
            "counts": list(counts),
            "frozen": gc.get_freeze_count(),
        }


GC_TIMER = GcTimer()


def bench_app() -> Any:
    """uvicorn factory: the real service app plus ``/bench/open``, /whoami's twin without a key."""
    from fastapi.routing import APIRoute

    from jamey_engine.engine import Engine
    from jamey_engine.service import app as service_app
    from jamey_engine.service import create_app
    from jamey_engine.service.app import WhoAmI

    async def bench_open() -> WhoAmI:
        return WhoAmI(id="open", name="open", scopes=[], rate_limit="", legacy=False)

    # In the same router as /whoami, right after it, as a plain (unkeyed) route: both pay the same
    # FastAPI dispatch, and the twin one failed path match (well under a microsecond). In a router
    # of its own, whichever router came first would save the other ~3 µs of router dispatch.
    service_app.keyed.add_api_route(
        "/bench/open",
        bench_open,
        methods=["GET"],
        response_model=WhoAmI,
        include_in_schema=False,
        route_class_override=APIRoute,
    )
    service_app.keyed.add_api_route(
        "/bench/gc", GC_TIMER.report, methods=["GET"], include_in_schema=False, route_class_override=APIRoute
    )
    GC_TIMER.install()
    if os.environ.get("JAMEY_BENCH_STAGES") == "1":  # bench/bench_tail.py: per-stage timestamps
        from bench.stage_trace import STAGE_TRACE

        STAGE_TRACE.install()
        service_app.keyed.add_api_route(
            "/bench/stages",
            STAGE_TRACE.report,
            methods=["GET"],
            include_in_schema=False,
            route_class_override=APIRoute,
        )
    # JAMEY_BENCH_FAST_PATH=0: the same app answering every request through its FastAPI routes,
    # the baseline of what the fast path saves (service/fastpath.py).
    return create_app(Engine(), fast_path=os.environ.get("JAMEY_BENCH_FAST_PATH", "1") != "0")


# -- load generation ----------------------------------------------------------------------------


def median_of(runs: list[dict[str, Any]], field: str) -> float:
    """The median of ``field`` over several load runs."""
    return float(statistics.median(run[field] for run in runs))


class Load:
    """wrk against one server: keyed or not, plain URL or a script of prepared requests."""

    def __init__(self, server: Server, work: Path) -> None:
        self.server = server
        self.work = work

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.port}{path}"

    def get(self, path: str, seconds: float, connections: int, key: str | None = None) -> dict[str, Any]:
        headers = {"X-API-Key": key} if key else None
        return wrk.run(self.url(path), seconds, connections, headers=headers, pid=self.server.process.pid)

    def script(
        self,
        name: str,
        method: str,
        targets: list[str],
        seconds: float,
        connections: int,
        key: str,
        bodies: list[str] | None = None,
    ) -> dict[str, Any]:
        script = wrk.requests_script(self.work / f"{name}.lua", method, targets, bodies)
        return wrk.run(
            self.url(targets[0]), seconds, connections, headers={"X-API-Key": key}, script=script,
            pid=self.server.process.pid,
        )  # fmt: skip


# -- the server -----------------------------------------------------------------------------------


class Server:
    """``bench.bench_service:bench_app`` (a factory) on a free port in ``workers`` worker
    processes, under uvicorn or granian (``server``), with ``env`` added to its environment."""

    def __init__(
        self,
        data_dir: Path,
        fast_path: bool = True,
        server: str = "uvicorn",
        env: dict[str, str] | None = None,
        workers: int = 1,
    ) -> None:
        from tests.helpers import free_port

        self.port = free_port()
        self.server = server
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "JAMEY_BENCH_FAST_PATH": "1" if fast_path else "0",
            "JAMEY_DATA_DIR": str(data_dir),
            "JAMEY_GLOBAL_RATE_LIMIT": GLOBAL_LIMIT,
            # JAMEY_LOG_LEVEL as deployed (info): one access-log line per request (benchmark 10).
            "JAMEY_MAX_CONTENT_BYTES": "65536",
            **(env or {}),
        }
        self.log = (data_dir.parent / "server.log").open("ab")
        # Served as `jamey serve` serves (bench/serve_main.py: its options, the flusher process).
        command = [sys.executable, "-m", "bench.serve_main", server, "bench.bench_service:bench_app",
                   str(self.port), str(workers)]  # fmt: skip
        self.process = subprocess.Popen(
            command, env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT
        )
        from tests.helpers import wait_for_port

        wait_for_port(self.port, timeout=60)
        # granian binds before its worker has built the app: wait for an answer, not the port.
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/bench/gc", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server} did not answer on port {self.port}")
            time.sleep(0.2)

    def gc_stats(self) -> dict[str, Any]:
        """The serving process's collections since the last call (``GET /bench/gc``)."""
        return dict(httpx.get(f"http://127.0.0.1:{self.port}/bench/gc", timeout=30).json())

    def settle(self, timeout: float = 120.0) -> None:
        """Wait until the flusher has moved every logged store into the index (no segment left),
        so the index work a run leaves behind does not share the cores with the next run."""
        from tests.helpers import wait_until

        wait_until(lambda: pending_segments(self.data_dir) == 0, timeout, "the flusher to catch up")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def pending_segments(data_dir: Path) -> int:
    """The write-ahead log segments under ``data_dir`` not yet flushed into an index."""
    from jamey_engine.memory.wal import parse_segment

    return sum(1 for path in data_dir.rglob("*") if parse_segment(path.name) is not None)


# -- the benchmarks -------------------------------------------------------------------------------


def _random_text(rng: random.Random, words: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def seed_memories(data_dir: Path, count: int) -> None:
    """``count`` memories of 12 random words in layer ``semantic`` (bulk import, one commit)."""
    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine

    rng = random.Random(42)
    path = data_dir.parent / "seed.jsonl"
    with path.open("w") as f:
        for n in range(count):
            stamp = f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}T00:00:00Z"
            f.write(json.dumps({"content": _random_text(rng), "timestamp": stamp}) + "\n")
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        engine.memory.import_jsonl("semantic", path)
    finally:
        engine.close()
    path.unlink()


def make_keys(data_dir: Path) -> dict[str, str]:
    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine

    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        return {
            "reader": engine.keys.create("bench-reader", scopes=("memory:read",), rate_limit=KEY_LIMIT).key,
            "writer": engine.keys.create("bench-writer", scopes=("memory:write",), rate_limit=KEY_LIMIT).key,
        }
    finally:
        engine.close()


def in_process_rate(call: Callable[[int], Any], threads: int, seconds: float) -> dict[str, Any]:
    """Calls/s, p99 and CPU us per call (this process, all threads) of ``call`` from ``threads``
    threads for ``seconds``."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker(number: int) -> None:
        mine = []
        sent = 0
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            call(number * 1_000_000 + sent)
            mine.append(time.perf_counter() - started)
            sent += 1
        with lock:
            latencies.extend(mine)

    started, cpu_before = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    return {
        "rps": len(latencies) / elapsed,
        "p99_ms": percentile(latencies, 99) * 1000,
        "cpu_us": cpu / max(1, len(latencies)) * 1e6,
    }


class DirectStores:
    """The store row's baseline: 32 threads calling ``MemoryStore.store`` in process, on an
    engine and data dir of their own; ``run`` once per round."""

    def __init__(self, work: Path, texts: list[str]) -> None:
        from jamey_engine.config import Settings
        from jamey_engine.engine import Engine

        data_dir = Path(tempfile.mkdtemp(prefix="direct-", dir=work))
        self.engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
        self.texts = texts

    def _store(self, n: int) -> Any:
        return self.engine.memory.store("working", self.texts[n % len(self.texts)])

    def run(self, seconds: float) -> dict[str, Any]:
        return in_process_rate(self._store, 32, seconds)

    def settle(self) -> None:
        """Flush what the run logged into the index (in this process: the bench's own cores),
        so that work does not overlap the HTTP run after it."""
        self.engine.memory.flush()

    def close(self) -> None:
        self.engine.close()


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median rate, p99 and CPU per call of several runs."""
    return {field: median_of(runs, field) for field in ("rps", "p99_ms", "cpu_us")}


def direct_store_baseline(work: Path, texts: list[str], seconds: float, repeats: int) -> dict[str, Any]:
    """32 threads storing in process, on the schedule of ``store_runs`` (a 1 s warm-up, then
    ``repeats`` runs of ``seconds`` in the same engine): the median of each figure. The later
    runs share the cores with the flush of the earlier ones, as the HTTP runs do."""
    direct = DirectStores(work, texts)
    try:
        direct.run(1.0)
        return medians([direct.run(seconds) for _ in range(repeats)])
    finally:
        direct.close()


def direct_search_baseline(
    data_dir: Path, queries: list[str], concurrency: int, seconds: float
) -> dict[str, Any]:
    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine

    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:

        def search(n: int) -> Any:
            return engine.memory.search("semantic", queries[n % len(queries)], limit=10)

        in_process_rate(search, concurrency, 1.0)  # open the reader, warm the caches
        return in_process_rate(search, concurrency, seconds)
    finally:
        engine.close()


def bench_auth_overhead(load: Load, key: str, seconds: float, repeats: int) -> list[Row]:
    """Keyed GET /whoami against its unkeyed twin, interleaved so machine drift hits both."""
    load.get("/whoami", 1, 8, key)  # warm up: key cache, lazy imports
    load.get("/bench/open", 1, 8)
    keyed_runs, open_runs = [], []
    for _ in range(repeats):
        keyed_runs.append(load.get("/whoami", seconds, 8, key))
        open_runs.append(load.get("/bench/open", seconds, 8))
    keyed_rps, open_rps = median_of(keyed_runs, "rps"), median_of(open_runs, "rps")
    # Each keyed run is compared with the unkeyed run right after it; the median of those
    # ratios is what drift between runs disturbs least.
    paired = statistics.median(k["rps"] / o["rps"] for k, o in zip(keyed_runs, open_runs, strict=True))
    name = "service: auth+rate-limit overhead"
    return [
        row(
            name,
            f"keyed GET /whoami req/s (8 conns; ratio: median of {repeats} interleaved pairs)",
            keyed_rps,
            baseline=open_rps,
            target=">= 85% of unkeyed",
            met=paired >= 0.85,
        )
        | {"ratio": paired},
        row(
            name,
            "server CPU us/request",
            median_of(keyed_runs, "cpu_us"),
            baseline=median_of(open_runs, "cpu_us"),
            higher_is_better=False,
        ),
        row(
            name,
            "p99 ms",
            median_of(keyed_runs, "p99_ms"),
            baseline=median_of(open_runs, "p99_ms"),
            higher_is_better=False,
        ),
    ]


def store_runs(
    load: Load,
    key: str,
    texts: list[str],
    seconds: float,
    repeats: int,
    connections: int = 32,
    before_each: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """``repeats`` wrk runs of POST /memories (after a 1 s warm-up), each with the serving
    process's collections during it (``gc``; absent with several workers). ``before_each``
    runs before each of them (a baseline's run, interleaved with these)."""
    bodies = [json.dumps({"layer": "working", "content": text}) for text in texts]

    def run(duration: float) -> dict[str, Any]:
        return load.script("store", "POST", ["/memories"], duration, connections, key, bodies)

    run(1)
    runs = []
    for _ in range(repeats):
        if before_each is not None:
            before_each()
        load.server.gc_stats()
        result = run(seconds)
        result["gc"] = load.server.gc_stats()
        runs.append(result)
    return runs


def bench_store(runs: list[dict[str, Any]], direct: dict[str, Any]) -> list[Row]:
    """POST /memories from 32 connections; the baseline is 32 threads storing in process."""
    stores, p99, cpu = median_of(runs, "rps"), median_of(runs, "p99_ms"), median_of(runs, "cpu_us")
    name = "service: POST /memories (32 conns, durable)"
    return [
        row(
            name, "stores/s (vs in-process store, 32 threads)", stores, baseline=direct["rps"],
            target=">= 60% of in-process", met=stores >= 0.6 * direct["rps"],
        ),
        row(
            name, "p99 ms (wrk latency distribution; baseline in-process)", p99, baseline=direct["p99_ms"],
            target="<= 20 ms", met=p99 <= 20, higher_is_better=False,
        ),
        row(name, "p99.9 ms", median_of(runs, "p999_ms"), higher_is_better=False),
        row(
            name, "server CPU us/store (vs in-process)", cpu, baseline=direct["cpu_us"],
            target="<= 1.5x in-process", met=cpu <= 1.5 * direct["cpu_us"], higher_is_better=False,
        ),
    ]  # fmt: skip


def gc_rows(name: str, runs: list[dict[str, Any]], before: list[dict[str, Any]]) -> list[Row]:
    """The tail and the full collections of ``runs`` against ``before`` (the same load)."""

    def gen2(group: list[dict[str, Any]], field: str) -> float:
        return float(statistics.median(run["gc"]["gen2"][field] for run in group))

    return [
        row(name, "p99 ms", median_of(runs, "p99_ms"), baseline=median_of(before, "p99_ms"), higher_is_better=False),
        row(name, "p99.9 ms", median_of(runs, "p999_ms"), baseline=median_of(before, "p999_ms"), higher_is_better=False),
        row(name, "stores/s", median_of(runs, "rps"), baseline=median_of(before, "rps")),
        row(name, "gen-2 collections per run", gen2(runs, "count"), baseline=gen2(before, "count"), higher_is_better=False),
        row(name, "gen-2 pause ms per run, total", gen2(runs, "total_ms"), baseline=gen2(before, "total_ms"), higher_is_better=False),
        row(name, "longest gen-2 pause ms", gen2(runs, "max_ms"), baseline=gen2(before, "max_ms"), higher_is_better=False),
    ]  # fmt: skip


def search_runs(
    load: Load, key: str, queries: list[str], seconds: float, repeats: int, connections: int
) -> list[dict[str, Any]]:
    paths = [f"/memories/search?layer=semantic&q={q.replace(' ', '+')}&limit=10" for q in queries]

    def run(duration: float) -> dict[str, Any]:
        return load.script("search", "GET", paths, duration, connections, key)

    run(1)
    return [run(seconds) for _ in range(repeats)]


def comparison_rows(name: str, runs: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> list[Row]:
    """Rate, p99 and server CPU of ``runs`` against ``baseline`` (the same requests), medians."""
    return [
        row(name, "req/s", median_of(runs, "rps"), baseline=median_of(baseline, "rps")),
        row(name, "p99 ms", median_of(runs, "p99_ms"), baseline=median_of(baseline, "p99_ms"), higher_is_better=False),
        row(name, "server CPU us/request", median_of(runs, "cpu_us"), baseline=median_of(baseline, "cpu_us"),
            higher_is_better=False),
    ]  # fmt: skip


def server_rows(what: str, runs: list[dict[str, Any]], uvicorn: list[dict[str, Any]]) -> list[Row]:
    """granian against uvicorn, the same requests from 32 connections."""
    return comparison_rows(f"service: granian vs uvicorn ({what}, 32 conns)", runs, uvicorn)


def bench_search(
    load: Load,
    key: str,
    queries: list[str],
    memories: int,
    seconds: float,
    repeats: int,
    direct: dict[str, Any],
    whoami_cpu_us: float,
) -> list[Row]:
    """GET /memories/search (limit 10) from 8 connections; the baseline searches in process."""
    runs = search_runs(load, key, queries, seconds, repeats, SEARCH_CONCURRENCY)
    rate, cpu = median_of(runs, "rps"), median_of(runs, "cpu_us")
    bound = 1.5 * (direct["cpu_us"] + whoami_cpu_us)
    name = f"service: GET /memories/search ({memories:,} memories, {SEARCH_CONCURRENCY} conns)"
    return [
        row(
            name, "req/s (vs in-process search, 8 threads)", rate, baseline=direct["rps"],
            target=">= 60% of in-process", met=rate >= 0.6 * direct["rps"],
        ),
        row(name, "p99 ms", median_of(runs, "p99_ms"), baseline=direct["p99_ms"], higher_is_better=False),
        row(
            name, "server CPU us/request (baseline: in-process search CPU + keyed /whoami CPU)", cpu,
            baseline=direct["cpu_us"] + whoami_cpu_us, target="<= 1.5x baseline", met=cpu <= bound,
            higher_is_better=False,
        ),
    ]  # fmt: skip


def redis_rows(quick: bool) -> list[Row]:
    """Benchmark 6: stores on one and two workers on Redis counters against one worker on
    memory://, the three servers interleaved (``alternating``)."""
    redis_env = {"JAMEY_RATE_LIMIT_STORAGE": REDIS_URL}
    modes: dict[Any, dict[str, Any]] = {0: {}, 1: {"env": redis_env}, 2: {"env": redis_env, "workers": 2}}
    runs, _ = alternating(modes, quick, search=False)
    stores = runs[0]["store"]
    rows: list[Row] = []
    for workers in (1, 2):
        on_redis = runs[workers]["store"]
        name = f"service: stores over HTTP, {workers} worker(s) on redis:// vs 1 worker on memory://"
        rate = median_of(on_redis, "rps")
        baseline = median_of(stores, "rps")
        rows.append(
            row(
                name, "stores/s (32 conns)", rate, baseline=baseline,
                target=">= 1.2x" if workers == 2 else "", met=rate >= 1.2 * baseline if workers == 2 else None,
            )
        )  # fmt: skip
        rows.append(
            row(name, "server CPU us/store", median_of(on_redis, "cpu_us"), baseline=median_of(stores, "cpu_us"),
                higher_is_better=False)
        )  # fmt: skip
    return rows


def main_redis_only(quick: bool = False) -> list[Row]:
    """Benchmark 6 alone (``JAMEY_BENCH_SERVICE_ONLY=redis``)."""
    return redis_rows(quick)


def alternating(
    modes: dict[Any, dict[str, Any]],
    quick: bool,
    search: bool = True,
    direct: bool = False,
    rounds: int | None = None,
) -> tuple[dict[Any, dict[str, list[dict[str, Any]]]], dict[str, Any] | None]:
    """Servers that differ only by ``modes`` (name: ``Server`` keyword arguments: ``env``,
    ``workers``...), each on a fresh copy of one seeded data dir (100,000 memories), in turn:
    three rounds of one keyed-search run (when ``search``) and one store run each (6 s, 32
    connections). Interleaved, so a drift of the machine (a noisy neighbour, the disk) falls on
    every mode alike. Returns the runs per mode and, with ``direct``, the in-process store
    baseline, measured before the first round. ``rounds``: more than the three (one when quick)
    for a difference within the machine's noise."""
    seconds = 2.0 if quick else 6.0
    rounds = rounds or (1 if quick else 3)
    work = Path(tempfile.mkdtemp(prefix="jamey-bench-service-"))
    data_dir = work / "data"
    data_dir.mkdir()
    runs: dict[Any, dict[str, list[dict[str, Any]]]] = {mode: {"search": [], "store": []} for mode in modes}
    try:
        seed_memories(data_dir, 2_000 if quick else 100_000)
        keys = make_keys(data_dir)
        rng = random.Random(3)
        queries = [rng.choice(WORDS) for _ in range(500)]
        texts = [_random_text(random.Random(n)) for n in range(1000)]
        baseline = direct_store_baseline(work, texts, seconds, rounds) if direct else None
        for _ in range(rounds):
            for mode, got in runs.items():
                server = Server(copy_of(data_dir, work), **modes[mode])
                try:
                    load = Load(server, work)
                    if search:
                        got["search"] += search_runs(load, keys["reader"], queries, seconds, 1, 32)
                    got["store"] += store_runs(load, keys["writer"], texts, seconds, 1)
                finally:
                    server.stop()
        return runs, baseline
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main_writes_only(quick: bool = False) -> list[Row]:
    """Benchmark 8 alone (``JAMEY_BENCH_SERVICE_ONLY=writes``): the one-write-per-answer
    protocol (service/http_protocol.py, ``CoalescingProtocol``: every request still an ASGI
    cycle, so only the writes differ; benchmark 11 measures the answers given whole) against
    uvicorn's own; medians per protocol."""
    coalescing = {"env": {"JAMEY_BENCH_HTTP": "coalescing"}}
    runs, _ = alternating(
        {"coalescing": coalescing, "httptools": {"env": {"JAMEY_BENCH_HTTP": "httptools"}}}, quick
    )
    new, old = runs["coalescing"], runs["httptools"]
    name = "service: one socket write per answer vs uvicorn's two ({}, 32 conns)"
    return comparison_rows(name.format("keyed search"), new["search"], old["search"]) + comparison_rows(
        name.format("store"), new["store"], old["store"]
    )


def main_whole_only(quick: bool = False) -> list[Row]:
    """Benchmark 11 alone (``JAMEY_BENCH_SERVICE_ONLY=whole``): the hot requests answered whole
    (service/http_protocol.py, ``ServiceProtocol``) against every request as an ASGI cycle;
    medians per protocol, and the stores against the in-process baseline."""
    runs, direct = alternating(
        {"whole": {}, "cycle": {"env": {"JAMEY_BENCH_HTTP": "coalescing"}}}, quick, direct=True
    )
    assert direct is not None
    new, old = runs["whole"], runs["cycle"]
    name = "service: hot requests answered whole vs as ASGI cycles ({}, 32 conns)"
    return [
        *comparison_rows(name.format("keyed search"), new["search"], old["search"]),
        *comparison_rows(name.format("store"), new["store"], old["store"]),
        *bench_store(new["store"], direct),
    ]


def main_flusher_only(quick: bool = False) -> list[Row]:
    """Benchmark 9 alone (``JAMEY_BENCH_SERVICE_ONLY=flusher``): stores served as ``jamey serve``
    serves them (the flusher process) against the flush in the serving process
    (``JAMEY_FLUSHER=inline``), and both against the in-process stores; medians per mode."""
    runs, direct = alternating(
        {"process": {}, "inline": {"env": {"JAMEY_FLUSHER": "inline"}}}, quick, search=False, direct=True
    )
    assert direct is not None
    process, inline = runs["process"]["store"], runs["inline"]["store"]
    inline_rate = row(
        "service: POST /memories, inline flush (32 conns, durable)",
        "stores/s (vs in-process)",
        median_of(inline, "rps"),
        baseline=direct["rps"],
    )
    name = "service: flusher process vs inline flush (stores, 32 conns)"
    return [*comparison_rows(name, process, inline), *bench_store(process, direct), inline_rate]


def main(quick: bool = False) -> list[Row]:
    """Run the three service benchmarks on one server; rows as bench/common.row builds them."""
    if os.environ.get("JAMEY_BENCH_SERVICE_ONLY", "") == "redis":
        return main_redis_only(quick)
    if os.environ.get("JAMEY_BENCH_SERVICE_ONLY", "") == "writes":
        return main_writes_only(quick)
    if os.environ.get("JAMEY_BENCH_SERVICE_ONLY", "") == "whole":
        return main_whole_only(quick)
    if os.environ.get("JAMEY_BENCH_SERVICE_ONLY", "") == "flusher":
        return main_flusher_only(quick)
    seconds = 2.0 if quick else 6.0
    repeats = 1 if quick else 3
    auth_seconds, auth_repeats = (1.0, 1) if quick else (4.0, 5)
    memories = 2_000 if quick else 100_000
    work = Path(tempfile.mkdtemp(prefix="jamey-bench-service-"))
    data_dir = work / "data"
    data_dir.mkdir()
    rows: list[Row] = []
    try:
        seed_memories(data_dir, memories)
        keys = make_keys(data_dir)
        rng = random.Random(3)
        queries = [
            rng.choice(WORDS) if n % 2 else f"{rng.choice(WORDS)} {rng.choice(WORDS)}" for n in range(500)
        ]
        texts = [_random_text(random.Random(n)) for n in range(1000)]
        search_direct = direct_search_baseline(data_dir, queries, SEARCH_CONCURRENCY, seconds)
        template = copy_of(data_dir, work)  # before any server stores: see copy_of

        server = Server(data_dir)
        try:
            load = Load(server, work)
            auth = bench_auth_overhead(load, keys["reader"], auth_seconds, auth_repeats)
            rows += auth
            whoami_cpu = auth[1]["value"]
            # Searches before stores: the stores leave the index work of ~50,000 memories (the
            # log's flush, tantivy's merges) running for a while, which would share the cores
            # with the searches measured after them.
            search = bench_search(
                load, keys["reader"], queries, memories, seconds, repeats, search_direct, whoami_cpu
            )
            uvicorn_search = search_runs(load, keys["reader"], queries, seconds, repeats, 32)
            # The in-process baseline round by round with the HTTP stores (in-process, then
            # HTTP): a drift of this shared machine falls on both alike.
            direct = DirectStores(work, texts)
            try:
                direct.run(1.0)
                direct_runs: list[dict[str, Any]] = []

                def direct_run() -> None:
                    # Each side's left-over index work (the flusher's, the direct engine's
                    # inline flush) done before the other side's run, not during it.
                    server.settle()
                    direct_runs.append(direct.run(seconds))
                    direct.settle()

                stores = store_runs(load, keys["writer"], texts, seconds, repeats, before_each=direct_run)
            finally:
                direct.close()
            store_direct = medians(direct_runs)
            stores_8 = store_runs(load, keys["writer"], texts, seconds, repeats, connections=8)
            store = bench_store(stores, store_direct)
            rows += store + search
        finally:
            server.stop()

        # The flush in the serving process (JAMEY_FLUSHER=inline, the library's default) instead
        # of `jamey serve`'s flusher process: what moving the indexing out of the worker gives.
        def stores_with(env: dict[str, str]) -> list[dict[str, Any]]:
            """The stores (32 connections) of a server with ``env``, on a fresh copy."""
            server = Server(copy_of(template, work), env=env)
            try:
                return store_runs(Load(server, work), keys["writer"], texts, seconds, repeats)
            finally:
                server.stop()

        inline = stores_with({"JAMEY_FLUSHER": "inline"})
        rows += comparison_rows("service: flusher process vs inline flush (stores, 32 conns)", stores, inline)
        # The access log off (JAMEY_LOG_LEVEL=warning): what its line per request costs.
        quiet = stores_with({"JAMEY_LOG_LEVEL": "warning"})
        rows += comparison_rows("service: access log on (default) vs off (stores, 32 conns)", stores, quiet)
        # The same collector without the frozen start-up heap (JAMEY_GC_FREEZE=0), the same loads.
        server = Server(copy_of(template, work), env={"JAMEY_GC_FREEZE": "0"})
        try:
            load = Load(server, work)
            thawed = store_runs(load, keys["writer"], texts, seconds, repeats)
            thawed_8 = store_runs(load, keys["writer"], texts, seconds, repeats, connections=8)
        finally:
            server.stop()
        rows += gc_rows("service: GC, start-up heap frozen vs not (stores, 32 conns)", stores, thawed)
        rows += gc_rows("service: GC, start-up heap frozen vs not (stores, 8 conns)", stores_8, thawed_8)
        # A larger young generation on top of the freeze (JAMEY_GC_THRESHOLD), kept only if it wins.
        tuned = stores_with({"JAMEY_GC_THRESHOLD": str(GC_THRESHOLD_TRIED)})
        rows += gc_rows(
            f"service: GC threshold0 {GC_THRESHOLD_TRIED} vs 700, frozen (stores, 32 conns)", tuned, stores
        )
        # granian in place of uvicorn: the fast path's search and store, 32 connections each.
        server = Server(copy_of(template, work), server="granian")
        try:
            load = Load(server, work)
            granian_search = search_runs(load, keys["reader"], queries, seconds, repeats, 32)
            granian_store = store_runs(load, keys["writer"], texts, seconds, repeats)
        finally:
            server.stop()
        rows += server_rows("keyed search", granian_search, uvicorn_search)
        rows += server_rows("store", granian_store, stores)
        # Redis counters (what several workers need): one worker, then two, against one in memory.
        rows += redis_rows(quick)
        # The same requests through the FastAPI routes (the fast path off): what it saves.
        server = Server(copy_of(template, work), fast_path=False)
        try:
            load = Load(server, work)
            routed_search = bench_search(
                load, keys["reader"], queries, memories, seconds, repeats, search_direct, whoami_cpu
            )
            routed_store = bench_store(
                store_runs(load, keys["writer"], texts, seconds, repeats), store_direct
            )
        finally:
            server.stop()
        for fast, routed, what in ((search, routed_search, "search"), (store, routed_store, "store")):
            name = f"service: fast path vs FastAPI route ({what})"
            rows.append(row(name, "req/s", fast[0]["value"], baseline=routed[0]["value"]))
            rows.append(
                row(
                    name,
                    "server CPU us/request",
                    fast[-1]["value"],
                    baseline=routed[-1]["value"],
                    higher_is_better=False,
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    from bench.common import cli

    cli(main)
