"""Service benchmarks against one real uvicorn process, driven by a raw-socket asyncio load generator.

1. Auth + rate-limit overhead: ``GET /whoami`` with a key (verify from cache, two moving-window
   limit checks, metrics) against ``GET /bench/open``, the same handler with no key, on the same
   server. Target: keyed >= 85% of unkeyed requests/s.
2. ``POST /memories`` with 32 connections: durable stores/s (each answer arrives after the
   commit that holds it) and p99. Target >= 1,500/s. Baseline: 32 threads calling
   ``MemoryStore.store`` in process (no HTTP), on another data dir.
3. ``GET /memories/search`` at 100,000 memories: requests/s and p99. Baseline: in-process
   ``MemoryStore.search`` with the same concurrency.

Keys carry per-second limits sized not to refuse (the limiter still does all its work).
Run alone: ``.venv/bin/python -m bench.bench_service [--quick]``.
"""

from __future__ import annotations

import asyncio
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

from bench.common import Row, percentile, row

ROOT = Path(__file__).resolve().parents[1]
KEY_LIMIT = "50000/second"
GLOBAL_LIMIT = "100000/second"
SEARCH_CONCURRENCY = 8
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
    return create_app(Engine())


# -- load generation ----------------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _load(
    port: int, make_request: Callable[[int], bytes], connections: int, seconds: float
) -> tuple[int, list[float], dict[int, int]]:
    """Keep-alive connections sending one request at a time for ``seconds``; latencies in seconds."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop_at = time.perf_counter() + seconds

    async def worker(number: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = 0
        try:
            while time.perf_counter() < stop_at:
                request = make_request(number * 1_000_000 + sent)
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
                sent += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(connections)))
    elapsed = time.perf_counter() - started
    return int(len(latencies) / elapsed), latencies, statuses


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(
    port: int, make_request: Callable[[int], bytes], connections: int, seconds: float, pid: int | None = None
) -> dict[str, Any]:
    """Requests/s, p50/p99 (ms), status counts and (given the server's ``pid``) its CPU us per request."""
    cpu_before = cpu_seconds(pid) if pid else 0.0
    rps, latencies, statuses = asyncio.run(_load(port, make_request, connections, seconds))
    cpu = cpu_seconds(pid) - cpu_before if pid else 0.0
    return {
        "rps": float(rps),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "statuses": statuses,
        "cpu_us": cpu / max(1, len(latencies)) * 1e6,
    }


def median_of(runs: list[dict[str, Any]], field: str) -> float:
    """The median of ``field`` over several load runs."""
    return float(statistics.median(run[field] for run in runs))


def get_request(path: str, headers: dict[str, str] | None = None) -> Callable[[int], bytes]:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    data = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()
    return lambda _: data


def post_json_request(
    path: str, headers: dict[str, str], body: Callable[[int], dict[str, Any]]
) -> Callable[[int], bytes]:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    def make(number: int) -> bytes:
        payload = json.dumps(body(number)).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        return head.encode() + payload

    return make


# -- the server -----------------------------------------------------------------------------------


class Server:
    """``uvicorn bench.bench_service:bench_app --factory`` on a free port, one worker."""

    def __init__(self, data_dir: Path) -> None:
        from tests.helpers import free_port

        self.port = free_port()
        self.env = {
            **os.environ,
            "JAMEY_DATA_DIR": str(data_dir),
            "JAMEY_GLOBAL_RATE_LIMIT": GLOBAL_LIMIT,
            "JAMEY_LOG_LEVEL": "warning",
            "JAMEY_MAX_CONTENT_BYTES": "65536",
        }
        self.log = (data_dir.parent / "server.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.bench_service:bench_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=self.env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        from tests.helpers import wait_for_port

        wait_for_port(self.port, timeout=60)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


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
    """Calls/s and p99 of ``call`` from ``threads`` threads for ``seconds``."""
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

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    elapsed = time.perf_counter() - started
    return {"rps": len(latencies) / elapsed, "p99_ms": percentile(latencies, 99) * 1000}


def direct_store_baseline(work: Path, seconds: float) -> dict[str, Any]:
    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine

    data_dir = work / "direct"
    data_dir.mkdir()
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    rng = random.Random(7)
    texts = [_random_text(rng) for _ in range(1000)]
    try:
        return in_process_rate(lambda n: engine.memory.store("working", texts[n % 1000]), 32, seconds)
    finally:
        engine.close()


def direct_search_baseline(
    data_dir: Path, queries: list[str], concurrency: int, seconds: float
) -> dict[str, Any]:
    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine

    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        engine.memory.search("semantic", queries[0], limit=10)  # open the reader
        return in_process_rate(
            lambda n: engine.memory.search("semantic", queries[n % len(queries)], limit=10),
            concurrency,
            seconds,
        )
    finally:
        engine.close()


def bench_auth_overhead(port: int, pid: int, key: str, seconds: float, repeats: int) -> list[Row]:
    """Keyed GET /whoami against its unkeyed twin, interleaved so machine drift hits both."""
    keyed = get_request("/whoami", {"Authorization": f"Bearer {key}"})
    unkeyed = get_request("/bench/open")
    load(port, keyed, 8, min(seconds, 1.0))  # warm up: key cache, worker threads, lazy imports
    load(port, unkeyed, 8, min(seconds, 1.0))
    keyed_runs, open_runs = [], []
    for _ in range(repeats):
        keyed_runs.append(load(port, keyed, 8, seconds, pid))
        open_runs.append(load(port, unkeyed, 8, seconds, pid))
    assert all(set(r["statuses"]) == {200} for r in keyed_runs + open_runs), keyed_runs + open_runs
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


def bench_store(
    port: int, pid: int, key: str, seconds: float, repeats: int, direct: dict[str, Any]
) -> list[Row]:
    """POST /memories from 32 connections; the baseline is 32 threads storing in process."""
    texts = [_random_text(random.Random(n)) for n in range(1000)]
    request = post_json_request(
        "/memories", {"X-API-Key": key}, lambda n: {"layer": "working", "content": texts[n % 1000]}
    )
    load(port, request, 32, min(seconds, 1.0))
    runs = [load(port, request, 32, seconds, pid) for _ in range(repeats)]
    assert all(set(r["statuses"]) == {201} for r in runs), runs
    stores = median_of(runs, "rps")
    name = "service: POST /memories (32 conns, durable)"
    return [
        row(name, "stores/s", stores, baseline=direct["rps"], target=">= 1,500/s", met=stores >= 1500),
        row(name, "p99 ms", median_of(runs, "p99_ms"), baseline=direct["p99_ms"], higher_is_better=False),
        row(name, "server CPU us/store", median_of(runs, "cpu_us"), higher_is_better=False),
    ]


def bench_search(
    port: int,
    pid: int,
    key: str,
    queries: list[str],
    memories: int,
    seconds: float,
    repeats: int,
    direct: dict[str, Any],
) -> list[Row]:
    """GET /memories/search (limit 10) from 8 connections; the baseline searches in process."""
    paths = [f"/memories/search?layer=semantic&q={q.replace(' ', '+')}&limit=10" for q in queries]
    prepared = [get_request(path, {"X-API-Key": key})(0) for path in paths]

    def request(number: int) -> bytes:
        return prepared[number % len(prepared)]

    load(port, request, SEARCH_CONCURRENCY, min(seconds, 1.0))
    runs = [load(port, request, SEARCH_CONCURRENCY, seconds, pid) for _ in range(repeats)]
    assert all(set(r["statuses"]) == {200} for r in runs), runs
    name = f"service: GET /memories/search ({memories:,} memories, {SEARCH_CONCURRENCY} conns)"
    return [
        row(name, "req/s", median_of(runs, "rps"), baseline=direct["rps"], target="report"),
        row(
            name,
            "p99 ms",
            median_of(runs, "p99_ms"),
            baseline=direct["p99_ms"],
            higher_is_better=False,
            target="report",
        ),
        row(name, "server CPU us/request", median_of(runs, "cpu_us"), higher_is_better=False),
    ]


def main(quick: bool = False) -> list[Row]:
    """Run the three service benchmarks on one server; rows as bench/common.row builds them."""
    seconds = 1.0 if quick else 6.0
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
        search_direct = direct_search_baseline(data_dir, queries, SEARCH_CONCURRENCY, seconds)
        store_direct = direct_store_baseline(work, seconds)

        server = Server(data_dir)
        try:
            port, pid = server.port, server.process.pid
            rows += bench_auth_overhead(port, pid, keys["reader"], auth_seconds, auth_repeats)
            rows += bench_store(port, pid, keys["writer"], seconds, repeats, store_direct)
            rows += bench_search(
                port, pid, keys["reader"], queries, memories, seconds, repeats, search_direct
            )
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    from bench.common import format_table

    quick = "--quick" in sys.argv[1:]
    print(format_table(main(quick)))
