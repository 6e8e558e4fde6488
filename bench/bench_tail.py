"""Where the slowest durable stores over HTTP spend their time (issue 31's tail, per stage).

One bench server (``bench.bench_service:bench_app``) with ``JAMEY_BENCH_STAGES=1``
(``bench/stage_trace.py``): wrk sends ``POST /memories`` from 32 connections for a few runs, and
the server records each store's stages on one clock. For the stores at or above the in-server
p99 against the median store, this reports the time in each stage:

- ``key``: the key check (cached) and rate limit;  ``body``: reading the body;
- ``queue``: queued until the log's group commit took it (the previous group still writing);
- ``append``: the group's write and fdatasync until its future resolved;
- ``wake``: from durable to the handler running again on the event loop;
- ``send``: building and sending the answer;

and the share of the slow stores that overlapped a garbage collection or an event-loop lag of
more than 2 ms, and the wrk p99 beside the in-server p99 (the difference is what happens outside
the handler: the kernel, uvicorn's parsing, the wait for the event loop to read the socket).
Run alone: ``.venv/bin/python -m bench.bench_tail [--quick]``.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.bench_service import Load, Server, _random_text, make_keys, median_of
from bench.common import Row, cli, percentile, row
from jamey_engine.config import Settings

STAGES = ("key", "body", "queue", "append", "wake", "send")


def _stages(request: list[float], groups: list[list[float]]) -> dict[str, float]:
    entered, checked, read, queued, durable, resumed, sent = request
    taken = next((g[0] for g in groups if g[0] <= durable <= g[1] + 1e-4 and g[0] >= queued - 1e-4), queued)
    return {
        "key": checked - entered,
        "body": read - checked,
        "queue": max(0.0, taken - queued),
        "append": durable - max(taken, queued),
        "wake": resumed - durable,
        "send": sent - resumed,
        "total": sent - entered,
    }


def _overlaps(start: float, end: float, spans: list[tuple[float, float]]) -> bool:
    return any(a < end and b > start for a, b in spans)


def analyse(trace: dict[str, Any]) -> dict[str, Any]:
    """Stage means of the median and of the slowest 1% stores, and what overlapped the slow ones."""
    groups = sorted(trace["groups"])
    stores = [(_stages(r, groups), r[0], r[-1]) for r in trace["requests"]]
    totals = [s["total"] for s, _, _ in stores]
    p50, p99 = percentile(totals, 50), percentile(totals, 99)
    slow = [(s, a, b) for s, a, b in stores if s["total"] >= p99]
    middle = [(s, a, b) for s, a, b in stores if abs(s["total"] - p50) <= 0.1 * p50] or stores
    gcs = [(a, b) for a, b, _ in trace["gcs"]]
    gen2 = [(a, b) for a, b, gen in trace["gcs"] if gen == 2]
    lags = [(at - late, at) for at, late in trace["lags"]]
    return {
        "count": len(stores),
        "p50_ms": p50 * 1000,
        "p99_ms": p99 * 1000,
        "slow": {stage: statistics.mean(s[stage] for s, _, _ in slow) * 1000 for stage in STAGES},
        "median": {stage: statistics.mean(s[stage] for s, _, _ in middle) * 1000 for stage in STAGES},
        "slow_in_gc": sum(_overlaps(a, b, gcs) for _, a, b in slow) / max(1, len(slow)),
        "slow_in_gen2": sum(_overlaps(a, b, gen2) for _, a, b in slow) / max(1, len(slow)),
        "slow_in_lag": sum(_overlaps(a, b, lags) for _, a, b in slow) / max(1, len(slow)),
        "all_in_lag": sum(_overlaps(a, b, lags) for _, a, b in stores) / max(1, len(stores)),
        "group_size": statistics.mean(g[2] for g in groups) if groups else 0.0,
        "group_ms_p99": percentile([g[1] - g[0] for g in groups], 99) * 1000 if groups else 0.0,
        "lag_ms_max": max((late for _, late in trace["lags"]), default=0.0) * 1000,
        "gc_ms_max": max((b - a for a, b in gcs), default=0.0) * 1000,
    }


def _store_runs(server: Server, work: Path, key: str, bodies: list[str], seconds: float) -> dict[str, Any]:
    url = f"http://127.0.0.1:{server.port}/bench/stages"
    load = Load(server, work)
    httpx.get(url, timeout=60)
    run = load.script("store", "POST", ["/memories"], seconds, 32, key, bodies)
    run["analysis"] = analyse(httpx.get(url, timeout=120).json())
    return run


def main(quick: bool = False) -> list[Row]:
    seconds, repeats = (2.0, 1) if quick else (8.0, 3)
    work = Path(tempfile.mkdtemp(prefix="jamey-bench-tail-"))
    texts = [_random_text(random.Random(n)) for n in range(1000)]
    bodies = [json.dumps({"layer": "working", "content": text}) for text in texts]
    # Python's GIL hand-over (5 ms) against 1 ms: a thread that wants the GIL waits up to the
    # interval for the holder to let go. Interleaved rounds, a server each. Both set through
    # the setting the worker applies at start-up (service/heap.py), so neither is overridden.
    configs = {"5 ms": {"JAMEY_SWITCH_INTERVAL_MS": "5"}, "1 ms": {"JAMEY_SWITCH_INTERVAL_MS": "1"}}
    servers: dict[str, tuple[Server, str]] = {}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    try:
        for name, env in configs.items():
            data_dir = work / name.replace(" ", "-") / "data"
            data_dir.mkdir(parents=True)
            key = make_keys(data_dir)["writer"]
            servers[name] = (Server(data_dir, env={"JAMEY_BENCH_STAGES": "1", **env}), key)
            Load(servers[name][0], work).script("store", "POST", ["/memories"], 1, 32, key, bodies)  # warm-up
        for _ in range(repeats):
            for name, (server, key) in servers.items():
                runs[name].append(_store_runs(server, work, key, bodies, seconds))
    finally:
        for server, _ in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    deployed = f"{Settings.from_env({}).switch_interval_ms:g} ms"  # the stages of the default's runs
    analyses = [run["analysis"] for run in runs[deployed]]
    name = "tail: POST /memories, 32 conns, per stage (bench/stage_trace.py)"

    def med(field: str) -> float:
        return float(statistics.median(a[field] for a in analyses))

    rows = [
        row(name, "wrk p99 ms (baseline: p99 inside the handler)", median_of(runs[deployed], "p99_ms"),
            baseline=med("p99_ms"), higher_is_better=False),
        row(name, "handler p50 ms", med("p50_ms"), higher_is_better=False),
    ]  # fmt: skip
    for stage in STAGES:
        slow = float(statistics.median(a["slow"][stage] for a in analyses))
        typical = float(statistics.median(a["median"][stage] for a in analyses))
        rows.append(
            row(name, f"{stage}: ms in the slowest 1% (baseline: the median store)", slow,
                baseline=typical, higher_is_better=False)
        )  # fmt: skip
    rows += [
        row(name, "slowest 1% overlapping a GC (share)", med("slow_in_gc")),
        row(name, "slowest 1% overlapping a gen-2 GC (share)", med("slow_in_gen2")),
        row(name, "slowest 1% overlapping an event-loop lag > 2 ms (share; baseline: all stores)",
            med("slow_in_lag"), baseline=med("all_in_lag")),
        row(name, "longest event-loop lag ms", med("lag_ms_max"), higher_is_better=False),
        row(name, "longest GC pause ms", med("gc_ms_max"), higher_is_better=False),
        row(name, "log group: stores per group", med("group_size")),
        row(name, "log group: p99 ms from taken to durable", med("group_ms_p99"), higher_is_better=False),
    ]  # fmt: skip
    tried = "tail: the GIL switch interval 1 ms against Python's 5 ms (stores, 32 conns)"
    for field, metric, higher in (
        ("rps", "stores/s", True),
        ("p99_ms", "wrk p99 ms", False),
        ("p999_ms", "wrk p99.9 ms", False),
        ("cpu_us", "server CPU us/store", False),
    ):
        rows.append(
            row(tried, f"{metric} (baseline: 5 ms)", median_of(runs["1 ms"], field),
                baseline=median_of(runs["5 ms"], field), higher_is_better=higher)
        )  # fmt: skip
    return rows


if __name__ == "__main__":
    cli(main)
