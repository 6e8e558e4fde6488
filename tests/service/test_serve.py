"""The real `jamey serve` process: flags, keys made by the CLI, the revocation bound, schedules, MQTT down."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from helpers import closed_port, is_revoked, sleep_until, wait_until
from service_support import ROOT, RunningServer, stop_server

from jamey_engine.config import Settings
from jamey_engine.db import Database

pytestmark = pytest.mark.slow


def cli_key(
    server: RunningServer, name: str, *scopes: str, rate_limit: str = "100000/minute"
) -> dict[str, str]:
    args = ["keys", "create", "--name", name, "--rate-limit", rate_limit, "--json"]
    for scope in scopes:
        args += ["--scope", scope]
    result = server.jamey(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(json.loads(result.stdout))


@pytest.mark.parametrize("http_server", ["uvicorn", "granian"])
def test_serve_answers_health_and_keyed_requests_on_the_flag_port(
    serve: Callable[..., RunningServer], http_server: str
) -> None:
    other_port = closed_port()
    server = serve(JAMEY_PORT=str(other_port), JAMEY_SERVER=http_server)  # --port wins over JAMEY_PORT
    health = httpx.get(f"{server.url}/health", timeout=10)
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{other_port}/health", timeout=2)
    key = cli_key(server, "serve-writer", "memory:read", "memory:write")
    headers = {"Authorization": f"Bearer {key['key']}"}
    stored = httpx.post(
        f"{server.url}/memories", json={"layer": "working", "content": "over the wire"}, headers=headers
    )
    assert stored.status_code == 201, stored.text
    found = httpx.get(
        f"{server.url}/memories/search", params={"layer": "working", "q": "wire"}, headers=headers
    )
    assert [r["id"] for r in found.json()["results"]] == [stored.json()["id"]]
    # No server banner from uvicorn; granian always names itself (no version), and cannot be told not to.
    assert found.headers.get("server") == (None if http_server == "uvicorn" else "granian")
    log = server.log()
    assert key["key"] not in log and key["key"].split("_")[2] not in log
    assert "key=serve-writer" in log  # the access log names the key instead
    # Both answered by the fast path, and counted in the metrics (shared files under granian).
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    for route in ("/memories", "/memories/search"):
        assert f'http_fastpath_requests_total{{route="{route}"}} 1.0' in metrics, metrics


def test_a_revocation_by_another_process_takes_effect_within_the_cache_bound(
    serve: Callable[..., RunningServer],
) -> None:
    server = serve()
    bound = Settings.from_env(server.env).key_cache_seconds
    key = cli_key(server, "revoke-me", "memory:read")
    headers = {"X-API-Key": key["key"]}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/whoami", headers=headers).status_code == 200  # accepted before the revocation
        revoking = subprocess.Popen(
            [sys.executable, "-m", "jamey_engine", "keys", "revoke", key["id"], "--yes"],
            env=server.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        # Keep using the key while the CLI runs (so the server's cache is fresh when the
        # revocation commits), and note when the commit is first seen in the database.
        database = Database(Settings.from_env(server.env).database_url)
        try:

            def commit_seen() -> float | None:
                assert client.get("/whoami", headers=headers).status_code in (200, 401)
                seen = time.monotonic() if is_revoked(database, key["id"]) else None
                assert revoking.poll() in (None, 0), revoking.communicate()[1]
                return seen

            committed = wait_until(commit_seen, 120, "the CLI's revocation to commit", every=0.01)
        finally:
            database.close()
        _, stderr = revoking.communicate(timeout=120)
        assert revoking.returncode == 0, stderr
        sleep_until(committed + bound)
        refused = client.get("/whoami", headers=headers)
        assert refused.status_code == 401, f"still accepted {bound}s after the revocation: {refused.text}"


def test_scheduled_backups_run_and_keep_the_newest(serve: Callable[..., RunningServer]) -> None:
    server = serve(JAMEY_BACKUP_INTERVAL="2s", JAMEY_BACKUP_KEEP="2")
    deadline = time.monotonic() + 60
    successes = 0.0
    while successes < 3:
        assert time.monotonic() < deadline, f"fewer than 3 scheduled backups in 60 s:\n{server.log()}"
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        for line in metrics.splitlines():
            if line.startswith('backup_operations_total{status="success"}'):
                successes = float(line.split()[-1])
        time.sleep(0.5)
    assert "backup_last_success_timestamp_seconds" in metrics
    stop_server(server)  # the schedule finishes its backup and retention before the process ends
    assert "Application shutdown complete" in server.log()
    done = re.findall(r"scheduled backup (\S+) done \(\d+ bytes\); retention removed", server.log())
    assert len(done) >= 3, server.log()
    listed = server.jamey("backup", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    kept = {backup["id"] for backup in json.loads(listed.stdout)}
    assert kept == set(done[-2:]), "retention keeps exactly JAMEY_BACKUP_KEEP=2, the newest"


def test_a_down_mqtt_broker_never_blocks_or_fails_requests(serve: Callable[..., RunningServer]) -> None:
    server = serve(JAMEY_MQTT_URL=f"mqtt://127.0.0.1:{closed_port()}")
    admin = cli_key(server, "mqtt-admin", "admin")
    headers = {"X-API-Key": admin["key"]}
    # A request that waited on the broker would hang past this; how fast they are is for bench/.
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for number in range(10):  # each publishes a key event
            response = client.post("/admin/keys", json={"name": f"evented-{number}"}, headers=headers)
            assert response.status_code == 201, response.text
        deadline = time.monotonic() + 10
        failures = 0.0
        while time.monotonic() < deadline and failures < 1:
            for line in client.get("/metrics").text.splitlines():
                if line.startswith("mqtt_connection_failures_total"):
                    failures = float(line.split()[-1])
            time.sleep(0.2)
        assert failures >= 1
        assert "mqtt_connected 0.0" in client.get("/metrics").text


@pytest.mark.parametrize(
    ("flag", "value"), [("--port", "abc"), ("--port", "70000"), ("--server", "hypercorn")]
)
def test_a_bad_flag_is_one_line_naming_the_flag(tmp_path: Path, flag: str, value: str) -> None:
    from click.testing import CliRunner

    from jamey_engine.cli import cli

    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "serve", flag, value])
    assert result.exit_code == 2, result.output
    assert f"error: {flag} {value!r} is invalid" in result.output
    assert "Traceback" not in result.output
