"""`jamey serve --workers 2` against one worker, in the same run, driven by wrk (Debian's `wrk`).

Each configuration is a real `jamey serve` process on one data dir (Redis counters for both,
so the only difference is the number of workers): keyed `GET /memories/search` and keyed
`GET /whoami` under wrk (1 thread, 8 connections), and durable `POST /memories` to one layer
under wrk with a Lua body script (32 connections). wrk is one C thread, so it leaves most of
both cores to the server. The keyed /whoami figure is the service's capacity that the default
global rate limit is set from.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import wrk as load
from bench.common import Row, cli, row

REDIS = os.environ.get("JAMEY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[1]
POST_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"layer": "working", "content": "a memory stored by wrk over http"}'
wrk.headers["Content-Type"] = "application/json"
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wrk(url: str, key: str, seconds: int, connections: int, script: Path | None = None) -> float:
    """Requests per second wrk measured (non-2xx answers make the run fail loudly)."""
    return float(load.run(url, seconds, connections, headers={"X-API-Key": key}, script=script)["rps"])


def serve(
    data_dir: Path, workers: int, env: dict[str, str], log_level: str = "warning"
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "jamey_engine", "serve", "--port", str(port), "--workers", str(workers)],
        env={**env, "JAMEY_LOG_LEVEL": log_level},
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
        rates: dict[tuple[int, str], float] = {}
        for workers in (1, 2):
            process, url = serve(work / "data", workers, env)
            try:
                wrk(f"{url}/whoami", key, 2, 8)  # warm both workers' key caches
                rates[(workers, "search")] = wrk(
                    f"{url}/memories/search?layer=working&q=delta", key, seconds, 8
                )
                rates[(workers, "whoami")] = wrk(f"{url}/whoami", key, seconds, 8)
                rates[(workers, "store")] = wrk(f"{url}/memories", key, seconds, 32, script)
            finally:
                process.terminate()
                process.wait(timeout=30)
        return [
            row(
                "2 workers vs 1, keyed GET /memories/search (wrk, 8 connections)",
                "req/s",
                rates[(2, "search")],
                baseline=rates[(1, "search")],
                target=">= 1.5x",
                met=rates[(2, "search")] >= 1.5 * rates[(1, "search")],
            ),
            row(
                "2 workers vs 1, keyed GET /whoami (wrk, 8 connections)",
                "req/s",
                rates[(2, "whoami")],
                baseline=rates[(1, "whoami")],
            ),
            row(
                "2 workers vs 1, durable POST /memories to one layer (wrk, 32 connections)",
                "stores/s",
                rates[(2, "store")],
                baseline=rates[(1, "store")],
                target=">= 1.0x",
                met=rates[(2, "store")] >= rates[(1, "store")],
            ),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    cli(main)
