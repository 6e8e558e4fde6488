"""Per-key usage: real traffic from three keys through a real `jamey serve`, counted per key in
the database (so totals are right with the database alone), exported per key id on /metrics and
scraped by a real Prometheus, and read back by `jamey keys usage` and the keys page."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from helpers import wait_until
from promserver import launch_prometheus, prometheus_config
from service_support import RunningServer
from test_serve import cli_key

from jamey_engine.config import Settings
from jamey_engine.engine import Engine

pytestmark = pytest.mark.slow


def _usage(server: RunningServer) -> dict[str, dict[str, object]]:
    result = server.jamey("keys", "usage", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_usage_counts_each_keys_requests_429s_and_errors(
    serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = serve()
    writer = cli_key(server, "writer", "memory:read", "memory:write")
    throttled = cli_key(server, "throttled", "memory:read", rate_limit="3/minute")
    reader = cli_key(server, "reader", "memory:read")

    def get(key: dict[str, str], path: str, **params: str) -> int:
        headers = {"Authorization": f"Bearer {key['key']}"}
        return httpx.get(f"{server.url}{path}", params=params, headers=headers, timeout=10).status_code

    for i in range(10):
        headers = {"Authorization": f"Bearer {writer['key']}"}
        stored = httpx.post(
            f"{server.url}/memories", json={"layer": "working", "content": f"note {i}"}, headers=headers
        )
        assert stored.status_code == 201, stored.text
    statuses = [get(throttled, "/memories/search", layer="working", q="note") for _ in range(7)]
    assert statuses.count(200) == 3 and statuses.count(429) == 4, statuses
    headers = {"Authorization": f"Bearer {reader['key']}"}
    denied = httpx.post(f"{server.url}/memories", json={"layer": "working", "content": "x"}, headers=headers)
    assert denied.status_code == 403
    assert get(reader, "/memories/working/not-a-memory") == 422  # not a UUID, as the schema says
    assert get(reader, "/whoami") == 200
    # A real server error: the episodic layer's index (not yet opened by the service) is damaged.
    damaging = Engine(Settings.from_env(server.env))
    try:
        (damaging.memory.layer_path("episodic") / "meta.json").write_text("{damaged")
    finally:
        damaging.close()
    assert get(reader, "/memories/search", layer="episodic", q="note") == 500

    expected = {
        "writer": {"requests": 10, "rate_limited": 0, "errors": 0},
        "throttled": {"requests": 7, "rate_limited": 4, "errors": 0},
        "reader": {"requests": 4, "rate_limited": 0, "errors": 3},
    }

    def counted() -> bool:
        usage = _usage(server)
        return all(
            {field: usage[name][field] for field in ("requests", "rate_limited", "errors")} == want
            for name, want in expected.items()
        )

    wait_until(counted, 30.0, "the service to flush the usage counts", every=0.25)  # flushed every 2 s
    usage = _usage(server)
    assert all(usage[name]["last_used_at"] for name in expected)
    assert writer["key"] not in json.dumps(usage)

    # The same totals on /metrics, per key id (never a secret), and scraped by Prometheus.
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert f'api_key_requests_total{{key_id="{throttled["id"]}",outcome="rate_limited"}} 4.0' in metrics
    assert f'api_key_requests_total{{key_id="{writer["id"]}",outcome="ok"}} 10.0' in metrics
    assert f'api_key_requests_total{{key_id="{reader["id"]}",outcome="client_error"}} 2.0' in metrics
    assert f'api_key_requests_total{{key_id="{reader["id"]}",outcome="server_error"}} 1.0' in metrics
    assert throttled["key"].split("_")[2] not in metrics

    port = int(server.url.rsplit(":", 1)[1])
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    url, process = launch_prometheus(workdir, prometheus_config(port, instance=None), workdir / "tsdb")
    try:

        def scraped() -> bool:
            query = 'sum by (key_id) (api_key_requests_total{job="jamey"})'
            answer = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=10).json()
            totals = {r["metric"]["key_id"]: float(r["value"][1]) for r in answer["data"]["result"]}
            return totals.get(writer["id"]) == 10 and totals.get(throttled["id"]) == 7

        wait_until(scraped, 30.0, "Prometheus to scrape the per-key totals", every=0.25)
    finally:
        process.terminate()
        process.wait(timeout=20)
        shutil.rmtree(workdir, ignore_errors=True)

    # The totals are in the database: any process reads them back, over any window.
    window = server.jamey("keys", "usage", "--days", "1", "--json")
    assert window.returncode == 0, window.stderr
    assert {row["name"]: row["requests"] for row in json.loads(window.stdout)}["throttled"] == 7
