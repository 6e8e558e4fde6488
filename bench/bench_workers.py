"""`jamey serve --workers 2` against one worker, in the same run, driven by wrk (Debian's `wrk`).

Each configuration is a real `jamey serve` process on its own copy of one seeded data dir
(Redis counters for both, so the only difference is the number of workers; the two-worker
server no longer starts on the layer the one-worker server filled): keyed `GET /memories/search` and keyed
`GET /whoami` under wrk (1 thread, 8 connections), and durable `POST /memories` to one layer
under wrk with a Lua body script (32 connections), to one layer and spread over the five.
wrk is one C thread, so it leaves most of both cores to the server. The keyed /whoami figure is
the service's capacity that the default global rate limit is set from.

``jamey serve`` runs its write-ahead-log flusher as a child process (JAMEY_FLUSHER=auto means
process): each worker only appends to its own log stream. After the store load the resident
memory of each serving worker and of the flusher is reported (no target), and for the stores to
one layer what bounds them: the server's CPU per store (workers and flusher), wrk's, how busy
the two cores were, and the log's fdatasyncs per second (``memory_wal_fdatasyncs_total``)
against the disk's limit (4 KiB appends with fdatasync, as bench_wal measures it).

Three rounds, each starting both servers afresh, one worker first then two, then the other way
round; every figure is the median of its three.
"""

from __future__ import annotations

import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import wrk as load
from bench.bench_wal import fdatasync_rate
from bench.common import Row, cli, copy_of, row

ROUNDS = 3
SYNC_SECONDS = 2.5  # workers copy their own counts into the shared metrics every 2 s
REDIS = os.environ.get("JAMEY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[1]
POST_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"layer": "working", "content": "a memory stored by wrk over http"}'
wrk.headers["Content-Type"] = "application/json"
"""
FIVE_LAYERS_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local layers = {"working", "short_term", "long_term", "episodic", "semantic"}
local i = 0
request = function()
  i = i + 1
  local body = '{"layer": "' .. layers[(i % 5) + 1] .. '", "content": "a memory stored by wrk over http"}'
  return wrk.format(nil, nil, nil, body)
end
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wrk(url: str, key: str, seconds: int, connections: int, script: Path | None = None) -> float:
    """Requests per second wrk measured (non-2xx answers make the run fail loudly)."""
    return float(wrk_run(url, key, seconds, connections, script)["rps"])


def wrk_run(
    url: str, key: str, seconds: int, connections: int, script: Path | None = None, pid: int | None = None
) -> dict[str, float]:
    """wrk's figures (rps, p99_ms, machine_busy, ... and cpu_us given the server's pid) for one run."""
    return load.run(url, seconds, connections, headers={"X-API-Key": key}, script=script, pid=pid)


def log_fdatasyncs(url: str) -> float:
    """The service's ``memory_wal_fdatasyncs_total`` (every worker's, once their 2 s sync ran)."""
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("memory_wal_fdatasyncs_total "):
            return float(line.split()[1])
    raise RuntimeError("no memory_wal_fdatasyncs_total on /metrics")


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def serving_processes(serve_pid: int, memory_dir: Path) -> tuple[list[int], int | None]:
    """(the serving workers' pids, the flusher's pid) of one ``jamey serve``: with one worker
    the serve process itself serves; with more, the children uvicorn spawned do."""
    from jamey_engine.memory.flusher import holder

    flusher = holder(memory_dir)
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == serve_pid and b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline:
            children.append(int(entry.name))
    return (children or [serve_pid]), flusher


def serve(
    data_dir: Path, workers: int, env: dict[str, str], log_level: str = "info"
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "jamey_engine", "serve", "--port", str(port), "--workers", str(workers)],
        env={**env, "JAMEY_DATA_DIR": str(data_dir), "JAMEY_LOG_LEVEL": log_level},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("jamey serve did not start")


def measure(
    data_dir: Path, workers: int, env: dict[str, str], key: str, seconds: int, script: Path, five: Path
) -> dict[str, float]:
    """One server's figures: search, /whoami, stores to one layer and to five, and RSS."""
    got: dict[str, float] = {}
    process, url = serve(data_dir, workers, env)
    try:
        wrk(f"{url}/whoami", key, 2, 8)  # warm both workers' key caches
        got["search"] = wrk(f"{url}/memories/search?layer=working&q=delta", key, seconds, 8)
        got["whoami"] = wrk(f"{url}/whoami", key, seconds, 8)
        time.sleep(SYNC_SECONDS)
        syncs = log_fdatasyncs(url)
        stored = wrk_run(f"{url}/memories", key, seconds, 32, script, pid=process.pid)
        time.sleep(SYNC_SECONDS)  # every worker has added its own to the shared counter
        got["store"] = float(stored["rps"])
        got["store p99"] = float(stored["p99_ms"])
        got["store cpu"] = float(stored["cpu_us"])
        got["store busy"] = float(stored["machine_busy"]) * 100
        got["store wrk cpu"] = float(stored["wrk_cpu_us"])
        got["store syncs"] = (log_fdatasyncs(url) - syncs) / seconds
        got["five"] = wrk(f"{url}/memories", key, seconds, 32, five)
        pids, flusher = serving_processes(process.pid, data_dir / "memory")
        got["worker"] = max(rss_mib(pid) for pid in pids)
        got["flusher"] = rss_mib(flusher) if flusher else 0.0
    finally:
        process.terminate()
        process.wait(timeout=30)
    shutil.rmtree(data_dir, ignore_errors=True)
    return got


def main(quick: bool = False) -> list[Row]:
    seconds = 3 if quick else 5
    work = Path(tempfile.mkdtemp(prefix="jamey-bench-workers-"))
    try:
        env = {
            **os.environ,
            "JAMEY_DATA_DIR": str(work / "data"),
            "JAMEY_RATE_LIMIT_STORAGE": REDIS,
            "JAMEY_GLOBAL_RATE_LIMIT": "1000000/second",
        }
        (work / "data").mkdir()
        from jamey_engine.config import Settings
        from jamey_engine.engine import Engine

        engine = Engine(Settings.from_env(env))
        try:
            words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
            engine.memory.store_batch(
                "working",
                [{"content": " ".join(words[(i + j) % 8] for j in range(6))} for i in range(5000)],
            )
            key = engine.keys.create("bench", scopes=("admin",), rate_limit="100000/second").key
        finally:
            engine.close()
        script = work / "post.lua"
        script.write_text(POST_SCRIPT)
        five = work / "post-five.lua"
        five.write_text(FIVE_LAYERS_SCRIPT)
        measured: dict[tuple[int, str], list[float]] = collections.defaultdict(list)
        # Interleaved rounds, the order turned each round (1 2, 2 1, 1 2): on a shared VM the
        # rate drifts by more than the difference measured, and a drift falls on both alike.
        for round_number in range(1 if quick else ROUNDS):
            for workers in (1, 2) if round_number % 2 == 0 else (2, 1):
                data_dir = copy_of(work / "data", work)  # each server on the same seeded layer
                for name, value in measure(data_dir, workers, env, key, seconds, script, five).items():
                    measured[(workers, name)].append(value)
        rates = {got: statistics.median(values) for got, values in measured.items()}  # RSS too
        limit, _sync_ms = fdatasync_rate(work)

        def pair(benchmark: str, metric: str, name: str, **kwargs: Any) -> Row:
            """Two workers' median of ``name`` against one worker's."""
            return row(benchmark, metric, rates[(2, name)], baseline=rates[(1, name)], **kwargs)

        def scaled(name: str) -> bool:
            return rates[(2, name)] >= 1.5 * rates[(1, name)]

        search = "2 workers vs 1, keyed GET /memories/search (wrk, 8 connections)"
        whoami = "2 workers vs 1, keyed GET /whoami (wrk, 8 connections)"
        one = "2 workers vs 1, durable POST /memories to one layer (wrk, 32 connections)"
        spread = "2 workers vs 1, durable POST /memories spread over five layers (wrk, 32 connections)"
        lower = {"higher_is_better": False}
        return [
            pair(search, "req/s", "search", target=">= 1.5x", met=scaled("search")),
            pair(whoami, "req/s", "whoami"),
            pair(one, "stores/s", "store", target=">= 1.5x", met=scaled("store")),
            pair(one, "p99 ms", "store p99", **lower),
            pair(one, "server CPU us/store (workers and flusher)", "store cpu", **lower),
            pair(one, "wrk's CPU us/store", "store wrk cpu", **lower),
            pair(one, "machine's cores busy, % (both cores)", "store busy"),
            pair(one, f"log fdatasyncs/s (the disk's limit: {limit:,.0f}/s)", "store syncs"),
            pair(spread, "stores/s", "five"),
            pair(
                "RSS after the store load: largest serving worker, 2 workers (vs 1 worker)",
                "MiB",
                "worker",
                **lower,
            ),
            pair(
                "RSS after the store load: the flusher process, 2 workers (vs 1 worker)",
                "MiB",
                "flusher",
                **lower,
            ),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    cli(main)
