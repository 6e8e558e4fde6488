"""Issue 26's load test, its figure: one key sends 40 parallel retention applies and 1,000-alert
webhook payloads while another key searches; the searching key's p99 (target < 100 ms), against
the same searches with no admin work, in the same run.

One real `jamey serve` (SQLite, in-memory counters: the defaults) on a data dir of 5,000
memories. The searching key is new when the load starts, so its first check asks the database
in a worker thread while the admin work holds threads and the database's write lock. The
correctness half (the key check never waits on the admin work) is
tests/abuse/test_load_authentication.py.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import Row, cli, percentile, row

ROOT = Path(__file__).resolve().parents[1]
APPLIES = 40
ALERTS = 1_000


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "jamey_engine", "serve", "--port", str(port)],
        env={**env, "JAMEY_LOG_LEVEL": "warning"},
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


def _payload() -> dict[str, Any]:
    from jamey_engine.durations import utcnow

    started = (utcnow() - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "4",
        "status": "firing",
        "receiver": "warning",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "JameyBench", "severity": "warning", "n": str(n)},
                "annotations": {"summary": "bench"},
                "startsAt": started,
                "fingerprint": secrets.token_hex(8),
            }
            for n in range(ALERTS)
        ],
    }


def _search_times(url: str, headers: dict[str, str], count: int) -> list[float]:
    times = []
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for _ in range(count):
            started = time.perf_counter()
            answer = client.get("/memories/search", params={"q": "delta", "layer": "working"})
            times.append(time.perf_counter() - started)
            if answer.status_code != 200:
                raise RuntimeError(f"search answered {answer.status_code}: {answer.text[:200]}")
    return times


def main(quick: bool = False) -> list[Row]:
    searches = 150 if quick else 500
    work = Path(tempfile.mkdtemp(prefix="jamey-bench-abuse-"))
    try:
        env = {
            **os.environ,
            "JAMEY_DATA_DIR": str(work / "data"),
            "JAMEY_GLOBAL_RATE_LIMIT": "1000000/minute",
        }
        env.pop("API_KEY", None)
        (work / "data").mkdir()
        from jamey_engine.config import Settings
        from jamey_engine.engine import Engine

        engine = Engine(Settings.from_env(env))
        try:
            words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
            engine.memory.store_batch(
                "working", [{"content": " ".join(words[(i + j) % 8] for j in range(6))} for i in range(5000)]
            )
            limit = "100000/minute"
            operator = engine.keys.create("olga-ops", scopes=("ops:write", "alerts:write"), rate_limit=limit)
            idle_key = engine.keys.create("ian-idle", scopes=("memory:read",), rate_limit=limit)
            busy_key = engine.keys.create("sam-search", scopes=("memory:read",), rate_limit=limit)
        finally:
            engine.close()
        process, url = _serve(env)
        try:
            idle = _search_times(url, {"X-API-Key": idle_key.key}, searches)
            stop = threading.Event()
            admin_answers: list[int] = []
            admin_headers = {"X-API-Key": operator.key}

            def admin_load() -> None:
                with (
                    httpx.Client(base_url=url, headers=admin_headers, timeout=300) as client,
                    ThreadPoolExecutor(max_workers=APPLIES + 4) as pool,
                ):
                    while not stop.is_set():
                        futures = [pool.submit(client.post, "/admin/retention/apply") for _ in range(APPLIES)]
                        futures += [
                            pool.submit(client.post, "/alertmanager/webhook", json=_payload())
                            for _ in range(4)
                        ]
                        admin_answers.extend(future.result().status_code for future in futures)

            loader = threading.Thread(target=admin_load)
            loader.start()
            time.sleep(1.0)  # the first applies and payloads are in flight
            try:
                busy = _search_times(url, {"X-API-Key": busy_key.key}, searches)
            finally:
                stop.set()
                loader.join()
        finally:
            process.terminate()
            process.wait(timeout=60)
        server_errors = sum(1 for status in admin_answers if status >= 500)
        print(f"   {len(admin_answers)} admin answers, {server_errors} of them 5xx", file=sys.stderr)
        what = f"while one key sends {APPLIES} parallel retention applies and {ALERTS:,}-alert webhooks"
        p99 = percentile(busy, 99) * 1000
        return [
            row(
                f"searching key's p99 {what} (baseline: the same searches, no admin work)",
                "ms",
                p99,
                baseline=percentile(idle, 99) * 1000,
                target="< 100 ms",
                met=p99 < 100,
                higher_is_better=False,
            ),
            row(
                f"searching key's p50 {what} (baseline: no admin work)",
                "ms",
                percentile(busy, 50) * 1000,
                baseline=percentile(idle, 50) * 1000,
                higher_is_better=False,
            ),
            row(
                f"admin answers that were 5xx {what}",
                "answers",
                server_errors,
                target="0",
                met=server_errors == 0,
            ),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    cli(main)
