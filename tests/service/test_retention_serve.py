"""Retention in real `jamey serve` processes: the schedule applies a policy in exactly one of two
services on one data dir and /metrics shows it; writes through the service during an apply are
all kept."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from service_support import RunningServer, start_server, stop_server

from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.oplog import recent_operations

pytestmark = pytest.mark.slow


def _metric(text: str, prefix: str) -> float | None:
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == prefix:
            return float(value)
    return None


def _seed(data_dir: Path, old: int, fresh: int) -> None:
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        now = utcnow()
        items = [{"content": f"old note {i}", "timestamp": now - timedelta(days=60)} for i in range(old)]
        items += [{"content": f"new note {i}", "timestamp": now - timedelta(hours=2)} for i in range(fresh)]
        engine.memory.store_batch("working", items)
        engine.retention.set("working", max_age="30d", actor="ops-lead")
    finally:
        engine.close()


def test_the_schedule_applies_a_policy_in_one_of_two_services_and_metrics_show_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _seed(data_dir, old=40, fresh=10)
    servers = [
        start_server(data_dir, tmp_path / f"serve{number}.log", JAMEY_RETENTION_INTERVAL="1s")
        for number in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        deleted = runs = None
        while time.monotonic() < deadline:
            text = httpx.get(f"{servers[1].url}/metrics", timeout=10).text  # either worker answers
            deleted = _metric(text, 'memory_retention_deleted_total{layer="working"}')
            runs = _metric(text, 'memory_retention_runs_total{status="success"}')
            if deleted == 40 and runs is not None and runs >= 2:
                break
            time.sleep(0.3)
        assert deleted == 40 and runs is not None and runs >= 2, servers[0].log() + servers[1].log()
        assert "memory_retention_last_success_timestamp_seconds" in text
        assert "memory_retention_interval_seconds 1.0" in text
        owners = [s for s in servers if "this process runs the retention schedule" in s.log()]
        assert len(owners) == 1, "exactly one process runs the schedule"
        listed = servers[0].jamey("memory", "retention", "show", "--json")
        assert listed.returncode == 0, listed.stderr
        # The owner dies: the other service takes the schedule over.
        stop_server(owners[0])
        other = next(s for s in servers if s is not owners[0])
        until = time.monotonic() + 60
        while "this process runs the retention schedule" not in other.log():
            assert time.monotonic() < until, other.log()
            time.sleep(0.3)
    finally:
        for server in servers:
            stop_server(server)


def test_writes_through_the_service_during_an_apply_are_all_kept(
    serve: Callable[..., RunningServer],
) -> None:
    server = serve(JAMEY_RETENTION_INTERVAL="")
    _seed(server.data_dir, old=60_000, fresh=0)
    made = server.jamey("keys", "create", "--name", "writer", "--scope", "memory:write", "--scope", "memory:read",
                        "--rate-limit", "100000/minute", "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    headers = {"X-API-Key": json.loads(made.stdout)["key"]}
    acknowledged: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def write() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                response = client.post(
                    "/memories",
                    json={"layer": "working", "content": f"written during the apply {len(acknowledged)}"},
                    headers=headers,
                )
                if response.status_code == 201:
                    acknowledged.append(response.json()["id"])
                else:
                    failures.append(response.text)

    writers = [threading.Thread(target=write) for _ in range(3)]
    for thread in writers:
        thread.start()
    try:
        time.sleep(0.3)
        applied = server.jamey("memory", "retention", "apply", "--json", "--yes")
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in writers:
            thread.join(timeout=60)
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["working"]["memories"] == 60_000
    assert not failures, failures[:3]
    assert len(acknowledged) > 10
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(server.data_dir)}))
    try:
        assert engine.memory.count("working") == len(acknowledged)
        stamps = [engine.memory.get("working", memory_id).timestamp for memory_id in acknowledged]
        run = next(row for row in recent_operations(engine.db, kind="retention") if row["layer"] == "working")
    finally:
        engine.close()
    # The layer's apply ran from ``at - duration`` to ``at``: writes acknowledged in between were
    # stored while the layer was being rewritten, and every one of them is kept.
    finished = run["at"]
    assert isinstance(finished, datetime) and isinstance(run["duration_seconds"], float)
    began = finished - timedelta(seconds=run["duration_seconds"])
    during = [stamp for stamp in stamps if began < stamp < finished]
    assert len(during) >= 3, (began, finished, min(stamps), max(stamps))
