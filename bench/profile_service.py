"""Where a keyed request's server time goes: py-spy on a real `jamey serve` under wrk.

``make profile`` (or ``python -m bench.profile_service [search|store] [--seconds N]``) seeds a
fresh data dir (20,000 memories in ``working``), starts one `jamey serve` worker (access log on,
as deployed), drives it with wrk (one C thread: 8 connections for search, 32 for store), records
the server with ``py-spy record --gil`` (samples of the thread holding the GIL: the work that
limits one worker) and prints each part's share of the samples, then the top functions.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import wrk
from bench.bench_workers import serve

# A sample goes to the part named by its innermost frame that matches a marker.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    (
        "the access log line",
        ("Logger.info", "Handler.handle", "StreamHandler", "StepBufferedHandler", "direct_sink"),
    ),
    ("the key check and both rate-limit decisions", ("Authenticator.authenticate",)),
    ("finding the layer's reader (generation, reload, tier)", ("MemoryStore.index", "_sync_tier", "is_warm")),
    ("loading the hits' documents", ("to_memory", "_memory_json", "Searcher.doc", "_search_one.<locals>")),
    ("parsing the query and the tantivy search", ("MemoryStore.search", "_search_one", "_hits")),
    ("store: queueing and awaiting the durable write", ("store_one", "store_nowait", "completion_of")),
    (
        "the write-ahead log and the index writer (their threads)",
        ("LogWriter", "WriteAheadLogs", "LayerWriter"),
    ),
    (
        "reading the body, JSON in and out, the response",
        ("Request.body", "_store_fields", "_json", "Response.__call__"),
    ),
    ("the fast path's dispatch and parameter checks", ("FastPath.", "_search_params", "_store_fields")),
    ("service middleware (metrics, headers, body bound)", ("ServiceMiddleware", "BodySizeLimit")),
    ("FastAPI and Starlette routing and validation", ("fastapi/", "starlette/")),
    (
        "the protocol's whole answers and socket writes (ServiceProtocol)",
        ("ServiceProtocol.", "CoalescingTransport."),
    ),
    ("uvicorn: HTTP parsing and socket writes", ("uvicorn/",)),
]
SEARCH = "/memories/search?layer=working&q=deploy+rollback&limit=10"
WORDS = [
    "deploy",
    "rollback",
    "release",
    "canary",
    "incident",
    "pager",
    "disk",
    "latency",
    "queue",
    "retry",
    "cache",
    "index",
]


def seed(data_dir: Path, count: int) -> str:
    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine

    rng = random.Random(5)
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        engine.memory.store_batch(
            "working", [{"content": " ".join(rng.choice(WORDS) for _ in range(10))} for _ in range(count)]
        )
        return engine.keys.create("profiler", scopes=("admin",), rate_limit="100000/second").key
    finally:
        engine.close()


def part_of(frames: list[str]) -> str:
    """The part a sample belongs to: the innermost frame that names one decides."""
    for frame in reversed(frames):
        for name, marks in PARTS:
            if any(mark in frame for mark in marks):
                return name
    return "other (the event loop, idle threads)"


def shares(raw: Path) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """Samples, each part's share, and the top self-time functions, from py-spy's raw output."""
    parts: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1].split(" (")[0]] += n
        parts[part_of(frames)] += n
    return (
        total,
        [(name, n / total) for name, n in parts.most_common()],
        [(name, n / total) for name, n in own.most_common(12)],
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_service")
    parser.add_argument("request", nargs="?", choices=("search", "store"), default="search")
    parser.add_argument("--seconds", type=int, default=12)
    args = parser.parse_args()
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists() or not shutil.which("wrk"):
        print("needs py-spy (make venv installs it) and wrk (make system)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="jamey-profile-"))
    try:
        data_dir = work / "data"
        data_dir.mkdir()
        key = seed(data_dir, 20_000)
        env = {**os.environ, "JAMEY_DATA_DIR": str(data_dir), "JAMEY_GLOBAL_RATE_LIMIT": "1000000/second"}
        process, url = serve(data_dir, 1, env, log_level="info")
        try:
            script = None
            if args.request == "store":
                bodies = [
                    json.dumps({"layer": "working", "content": f"profiled memory {n}"}) for n in range(1000)
                ]
                script = wrk.requests_script(work / "store.lua", "POST", ["/memories"], bodies)
            target, connections = (f"{url}/memories", 32) if script else (f"{url}{SEARCH}", 8)
            headers = {"X-API-Key": key}
            wrk.run(target, 2, connections, headers=headers, script=script)  # warm up
            pid = _worker_pid(process.pid)
            load = subprocess.Popen(
                ["wrk", "-t1", f"-c{connections}", f"-d{args.seconds + 2}s", "-H", f"X-API-Key: {key}"]
                + (["-s", str(script)] if script else [])
                + [target],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(1)
            raw = work / "profile.raw"
            subprocess.run(
                [str(spy), "record", "--pid", str(pid), "--duration", str(args.seconds), "--rate", "250",
                 "--gil", "--nonblocking", "--format", "raw", "--output", str(raw)],
                check=True, capture_output=True,
            )  # fmt: skip
            report = load.communicate()[0]
        finally:
            process.terminate()
            process.wait(timeout=30)
        total, by_part, top = shares(raw)
        print(
            f"keyed {args.request}: {wrk.parse_rate(report):,.0f} req/s under wrk; {total:,} samples (GIL holder)\n"
        )
        print("| where | share |\n|---|---:|")
        for name, share in by_part:
            print(f"| {name} | {share:.0%} |")
        print("\n| function (self) | share |\n|---|---:|")
        for name, share in top:
            print(f"| `{name}` | {share:.1%} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _worker_pid(pid: int) -> int:
    """The uvicorn worker serving requests: `jamey serve` itself with one worker."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0]) if children else pid


if __name__ == "__main__":
    sys.exit(main())
