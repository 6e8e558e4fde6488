"""The real `jamey serve` process: flags, keys made by the CLI, the revocation bound, schedules, MQTT down."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from helpers import free_port
from service_support import RunningServer

from jamey_engine.config import Settings

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


def test_serve_answers_health_and_keyed_requests_on_the_flag_port(
    serve: Callable[..., RunningServer],
) -> None:
    other_port = free_port()
    server = serve(JAMEY_PORT=str(other_port))  # --port wins over JAMEY_PORT
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
    assert "server" not in {h.lower() for h in found.headers}  # no server banner
    log = server.log()
    assert key["key"] not in log and key["key"].split("_")[2] not in log
    assert "key=serve-writer" in log  # the access log names the key instead


def test_a_revocation_by_another_process_takes_effect_within_the_cache_bound(
    serve: Callable[..., RunningServer],
) -> None:
    server = serve()
    bound = Settings.from_env(server.env).key_cache_seconds
    key = cli_key(server, "revoke-me", "memory:read")
    headers = {"X-API-Key": key["key"]}
    with httpx.Client(base_url=server.url, timeout=5) as client:
        assert client.get("/whoami", headers=headers).status_code == 200  # now cached in the server
        revoked = server.jamey("keys", "revoke", key["id"])
        assert revoked.returncode == 0, revoked.stdout + revoked.stderr
        committed = time.monotonic()  # the revocation was committed before the CLI exited
        while True:
            status = client.get("/whoami", headers=headers).status_code
            elapsed = time.monotonic() - committed
            if status == 401:
                break
            assert status == 200
            assert elapsed <= bound + 1.0, f"still accepted {elapsed:.2f}s after revocation (bound {bound}s)"
            time.sleep(0.05)
    assert elapsed <= bound + 0.5, f"revocation took {elapsed:.2f}s; documented bound is {bound}s"


def test_scheduled_backups_run_and_keep_the_newest(serve: Callable[..., RunningServer]) -> None:
    server = serve(JAMEY_BACKUP_INTERVAL="2s", JAMEY_BACKUP_KEEP="2")
    deadline = time.monotonic() + 40
    successes = 0.0
    while time.monotonic() < deadline:
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        for line in metrics.splitlines():
            if line.startswith('backup_operations_total{status="success"}'):
                successes = float(line.split()[-1])
        if successes >= 3:
            break
        time.sleep(0.5)
    assert successes >= 3, server.log()
    assert "backup_last_success_timestamp_seconds" in metrics
    listed = server.jamey("backup", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert 1 <= len(json.loads(listed.stdout)) <= 3  # retention keeps 2 (a third may be in flight)
    assert "scheduled backup" in server.log()


def test_a_down_mqtt_broker_never_slows_or_fails_requests(serve: Callable[..., RunningServer]) -> None:
    server = serve(JAMEY_MQTT_URL=f"mqtt://127.0.0.1:{free_port()}")
    admin = cli_key(server, "mqtt-admin", "admin")
    headers = {"X-API-Key": admin["key"]}
    with httpx.Client(base_url=server.url, timeout=5) as client:
        started = time.monotonic()
        for number in range(10):  # each publishes a key event
            response = client.post("/admin/keys", json={"name": f"evented-{number}"}, headers=headers)
            assert response.status_code == 201, response.text
        elapsed = time.monotonic() - started
        assert elapsed < 5, f"10 key creations took {elapsed:.2f}s with the broker down"
        deadline = time.monotonic() + 10
        failures = 0.0
        while time.monotonic() < deadline and failures < 1:
            for line in client.get("/metrics").text.splitlines():
                if line.startswith("mqtt_connection_failures_total"):
                    failures = float(line.split()[-1])
            time.sleep(0.2)
        assert failures >= 1
        assert "mqtt_connected 0.0" in client.get("/metrics").text


@pytest.mark.parametrize(("flag", "value"), [("--port", "abc"), ("--port", "70000")])
def test_a_bad_flag_is_one_line_naming_the_flag(tmp_path: Path, flag: str, value: str) -> None:
    from click.testing import CliRunner

    from jamey_engine.cli import cli

    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "serve", flag, value])
    assert result.exit_code == 2, result.output
    assert f"error: {flag} {value!r} is invalid" in result.output
    assert "Traceback" not in result.output
