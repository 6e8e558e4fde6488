"""`make run` runs `jamey stack`: the real service, Prometheus and Alertmanager on loopback."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import free_port, make_settings, wait_for_port, wait_until
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from jamey_engine.engine import Engine
from jamey_engine.keys import SCOPES

KEY_PATTERN = re.compile(r"\bjmy_[0-9A-Za-z]+_[0-9A-Za-z]+_[0-9A-Za-z]+\b")


def start_stack(
    data_dir: Path,
    ports: dict[str, int],
    env: dict[str, str] | None = None,
    *extra: str,
    workbench: bool = False,
    before: tuple[str, ...] = (),
) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "jamey_engine",
        "--data-dir",
        str(data_dir),
        *before,
        "stack",
        "--port",
        str(ports["service"]),
        "--prometheus-port",
        str(ports["prometheus"]),
        "--alertmanager-port",
        str(ports["alertmanager"]),
        "--workbench" if workbench else "--no-workbench",
        *extra,
    ]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def read_until(process: subprocess.Popen[str], marker: str, timeout: float = 60.0) -> str:
    """Everything the stack prints up to and including the line holding ``marker``.

    Reads the pipe a byte at a time once ``select`` says one is there, so a silent process
    fails the test at ``timeout`` (a blocking ``readline`` would wait forever) and nothing past
    the marker is taken from a later ``communicate``.
    """
    assert process.stdout is not None
    fd = process.stdout.fileno()
    seen, line = [], b""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            break
        byte = os.read(fd, 1)
        if not byte:
            break
        line += byte
        if byte == b"\n":
            seen.append(line.decode())
            line = b""
            if marker in seen[-1]:
                return "".join(seen)
    raise AssertionError(f"{marker!r} never printed within {timeout}s; got:\n{''.join(seen)}{line.decode()}")


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    return out


@pytest.fixture
def ports() -> Iterator[dict[str, int]]:
    yield {name: free_port() for name in ("service", "prometheus", "alertmanager")}


@pytest.mark.slow
def test_the_stack_as_make_run_starts_it_serves_the_workbench_too(data_dir: Path, tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("service", "prometheus", "alertmanager", "workbench")}
    process = start_stack(data_dir, ports, None, "--workbench-port", str(ports["workbench"]), workbench=True)
    try:
        banner = read_until(process, "Ctrl-C stops everything")
        assert f"workbench     http://127.0.0.1:{ports['workbench']}" in banner, banner
        for name in ("service", "prometheus", "alertmanager", "workbench"):
            wait_for_port(ports[name], timeout=60)
        workbench = f"http://127.0.0.1:{ports['workbench']}"
        health = httpx.get(f"{workbench}/_stcore/health", timeout=30)
        assert (health.status_code, health.text) == (200, "ok")
        page = httpx.get(workbench, timeout=30)
        assert page.status_code == 200 and "<noscript>" in page.text, page.text[:500]
        log = data_dir / "stack" / "workbench.log"
    finally:
        out = stop(process)
    assert process.returncode == 0, out
    for port in ports.values():
        with pytest.raises(TimeoutError):
            wait_for_port(port, timeout=0.5)
    assert "Traceback" not in log.read_text(errors="replace")


def test_the_stack_starts_everything_prints_a_first_admin_key_once_and_stops_on_ctrl_c(
    data_dir: Path, ports: dict[str, int]
) -> None:
    process = start_stack(data_dir, ports)
    try:
        banner = read_until(process, "Ctrl-C stops everything")
        keys = KEY_PATTERN.findall(banner)
        assert len(keys) == 1, banner
        wait_for_port(ports["service"], timeout=30)
        wait_for_port(ports["prometheus"], timeout=30)
        wait_for_port(ports["alertmanager"], timeout=30)
        health = httpx.get(f"http://127.0.0.1:{ports['service']}/health", timeout=5)
        assert health.status_code == 200, health.text
        whoami = httpx.get(
            f"http://127.0.0.1:{ports['service']}/admin/keys",
            headers={"Authorization": f"Bearer {keys[0]}"},
            timeout=5,
        )
        assert whoami.status_code == 200, whoami.text
        ready = httpx.get(f"http://127.0.0.1:{ports['prometheus']}/-/ready", timeout=5)
        assert ready.status_code == 200
    finally:
        out = stop(process)
    assert process.returncode == 0, out
    for port in ports.values():
        with pytest.raises(TimeoutError):
            wait_for_port(port, timeout=0.5)
    assert (data_dir / "prometheus").is_dir() and (data_dir / "alertmanager").is_dir()

    engine = Engine(make_settings(data_dir))
    try:
        admins = [k for k in engine.keys.list() if "admin" in k.scopes]
        assert len(admins) == 1 and set(admins[0].scopes) == set(SCOPES)
    finally:
        engine.close()

    again = start_stack(data_dir, ports)
    try:
        banner = read_until(again, "Ctrl-C stops everything")
    finally:
        stop(again)
    assert not KEY_PATTERN.findall(banner), "a second run must not create another key"


def test_without_prometheus_binaries_it_says_how_to_install_them_and_goes_on(
    data_dir: Path, ports: dict[str, int], tmp_path: Path
) -> None:
    process = start_stack(data_dir, ports, env={"PATH": str(tmp_path)})
    try:
        banner = read_until(process, "Ctrl-C stops everything")
        wait_for_port(ports["service"], timeout=30)
    finally:
        out = stop(process)
    assert "prometheus not found" in banner and "apt-get install prometheus" in banner
    assert "alertmanager not found" in banner
    assert process.returncode == 0, out


def stack_status(data_dir: Path) -> dict[str, dict[str, object]]:
    """``jamey stack status --json``, run from another process as a user would, by component."""
    done = subprocess.run(
        [sys.executable, "-m", "jamey_engine", "--data-dir", str(data_dir), "stack", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    return {"_stack": payload, **{c["name"]: c for c in payload["components"]}}


def healthy(url: str, **kwargs: Any) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2, **kwargs).status_code == 200
    except httpx.HTTPError:
        return False


def jamey_up_samples(prometheus_port: int) -> list[float]:
    """Every raw sample of ``up{job="jamey"}`` Prometheus holds from the last five minutes, oldest first."""
    response = httpx.get(
        f"http://127.0.0.1:{prometheus_port}/api/v1/query",
        params={"query": 'up{job="jamey"}[5m]'},
        timeout=5,
    )
    result = response.json()["data"]["result"]
    return [float(value) for _, value in result[0]["values"]] if result else []


def test_a_killed_service_comes_back_is_counted_and_prometheus_sees_it_down_then_up(
    data_dir: Path, ports: dict[str, int]
) -> None:
    process = start_stack(data_dir, ports, None, "--scrape-interval", "1s")
    try:
        read_until(process, "Ctrl-C stops everything")
        service_url = f"http://127.0.0.1:{ports['service']}"
        wait_until(lambda: healthy(service_url), 60, "the service answering /health", every=0.1)
        wait_until(
            lambda: 1.0 in jamey_up_samples(ports["prometheus"]),
            60,
            "Prometheus scraping the service",
            every=0.1,
        )
        before = stack_status(data_dir)["service"]
        assert before["state"] == "running" and before["restarts"] == 0, before
        assert isinstance(before["pid"], int)

        os.kill(before["pid"], signal.SIGKILL)

        def restarted() -> bool:
            service = stack_status(data_dir)["service"]
            return service["state"] == "running" and service["pid"] != before["pid"]

        # The delay before the restart is the supervisor's setting, shown by its log line below
        # ("restarting it in 1 s"); the deadline here only keeps a broken supervisor from hanging.
        wait_until(restarted, 60, "a new service process after kill -9", every=0.1)
        wait_until(lambda: healthy(service_url), 60, "the restarted service answering /health", every=0.1)
        after = stack_status(data_dir)["service"]
        assert after["restarts"] == 1 and after["url"] == service_url, after

        def down_then_up() -> bool:
            samples = jamey_up_samples(ports["prometheus"])
            return 0.0 in samples and samples[-1] == 1.0 and samples.index(0.0) > samples.index(1.0)

        wait_until(down_then_up, 30, "Prometheus recording up == 0 and then up == 1", every=0.1)
        log = (data_dir / "stack" / "service.log").read_text()
        assert "service exited with code -9; restarting it in 1 s" in log
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    assert "service exited with code -9; restarting it in 1 s" in out
    status = stack_status(data_dir)
    assert status["_stack"]["state"] == "stopped" and status["_stack"]["note"] == "", status
    assert {status[name]["state"] for name in ("service", "prometheus", "alertmanager")} == {"stopped"}


def test_a_service_that_cannot_start_is_given_up_while_prometheus_and_alertmanager_stay_up(
    data_dir: Path, ports: dict[str, int]
) -> None:
    fast = ("--restart-delay", "0.2", "--restart-delay-max", "0.5", "--give-up-after", "3")
    process = start_stack(data_dir, ports, None, *fast)
    try:
        read_until(process, "Ctrl-C stops everything")
        wait_until(lambda: healthy(f"http://127.0.0.1:{ports['service']}"), 60, "the service up", every=0.1)
        # Make the service's part of the data dir unusable: a file where its indexes go.
        (data_dir / "memory").rename(data_dir / "memory.moved")
        (data_dir / "memory").write_text("not a directory")
        os.kill(int(stack_status(data_dir)["service"]["pid"]), signal.SIGKILL)  # type: ignore[call-overload]

        wait_until(
            lambda: stack_status(data_dir)["service"]["state"] == "failed",
            120,
            "the stack giving up",
            every=0.1,
        )
        status = stack_status(data_dir)
        assert status["service"]["restarts"] == 2 and status["service"]["pid"] is None, status
        assert status["prometheus"]["state"] == "running" and status["alertmanager"]["state"] == "running"
        for port in (ports["prometheus"], ports["alertmanager"]):
            ready = httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=5)
            assert ready.status_code == 200, ready.text
        log = (data_dir / "stack" / "service.log").read_text()
        assert "cannot be used" in log and "not restarting it again" in log
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    assert "service exited with code 1, 3 times within 120 s: not restarting it again" in out, out
    assert process.returncode == 1, out  # a component gave up: the stack says so in its exit code


def test_a_port_in_use_is_refused_with_its_variable_before_anything_starts(
    data_dir: Path, ports: dict[str, int]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start_stack(
            data_dir, ports, {"JAMEY_ALERTMANAGER_PORT": str(port)}, "--alertmanager-port", str(port)
        )
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 2, out
        assert out.strip().splitlines()[-1] == (
            f"error: port {port} (JAMEY_ALERTMANAGER_PORT) is already in use on 127.0.0.1; "
            f"stop what uses it or set JAMEY_ALERTMANAGER_PORT (or --alertmanager-port) to a free port"
        ), out
        assert "Traceback" not in out
        assert not (data_dir / "stack" / "state.json").exists(), "nothing started"
        for name in ("service", "prometheus"):
            with pytest.raises(TimeoutError):
                wait_for_port(ports[name], timeout=0.5)

        env_only = subprocess.run(
            [sys.executable, "-m", "jamey_engine", "--data-dir", str(data_dir), "stack", "--no-workbench",
             "--port", str(ports["service"])],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "JAMEY_PROMETHEUS_PORT": str(port), "JAMEY_ALERTMANAGER_PORT": str(ports["alertmanager"])},
        )  # fmt: skip
        assert env_only.returncode == 2, env_only.stderr
        assert f"port {port} (JAMEY_PROMETHEUS_PORT) is already in use" in env_only.stderr


def test_the_tls_stack_serves_the_api_over_tls13_only_and_the_workbench_websocket(
    data_dir: Path, ports: dict[str, int]
) -> None:
    more = {name: free_port() for name in ("workbench", "https", "http", "workbench_https")}
    flags = ("--tls", "--workbench-port", str(more["workbench"]), "--nginx-https-port", str(more["https"]),
             "--nginx-http-port", str(more["http"]), "--nginx-workbench-port", str(more["workbench_https"]))  # fmt: skip
    process = start_stack(data_dir, ports, None, *flags, workbench=True)
    certificate = data_dir / "tls" / "localhost.crt"
    try:
        banner = read_until(process, "Ctrl-C stops everything")
        assert "made a self-signed certificate" in banner, banner
        assert (
            f"https://127.0.0.1:{more['https']}" in banner
            and f"https://127.0.0.1:{more['workbench_https']}" in banner
        )
        tls13 = ssl.create_default_context(cafile=str(certificate))
        api = f"https://127.0.0.1:{more['https']}"
        wait_until(lambda: healthy(api, verify=tls13), 60, "/health through nginx over HTTPS", every=0.1)
        response = httpx.get(f"{api}/health", verify=tls13, timeout=5)
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert response.headers["x-content-type-options"] == "nosniff"

        metrics = httpx.get(f"{api}/metrics", verify=tls13, timeout=5)
        assert metrics.status_code == 200, "loopback is an internal network for /metrics"
        redirect = httpx.get(f"http://127.0.0.1:{more['http']}/health", timeout=5)
        assert redirect.status_code == 301 and redirect.headers["location"] == f"{api}/health"

        tls12 = ssl.create_default_context(cafile=str(certificate))
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{api}/health", verify=tls12, timeout=5)

        wait_for_port(more["workbench"], timeout=60)
        websocket_url = f"wss://127.0.0.1:{more['workbench_https']}/_stcore/stream"
        with connect(
            websocket_url, ssl=tls13, open_timeout=30, subprotocols=[Subprotocol("streamlit")]
        ) as websocket:
            assert websocket.protocol.state.name == "OPEN"
        assert stack_status(data_dir)["nginx"]["state"] == "running"
    finally:
        out = stop(process)
    assert process.returncode == 0, out


def test_a_stack_killed_outright_takes_its_processes_with_it_and_reads_as_stopped(
    data_dir: Path, ports: dict[str, int]
) -> None:
    process = start_stack(data_dir, ports)
    try:
        read_until(process, "Ctrl-C stops everything")
        wait_for_port(ports["service"], timeout=60)
        wait_for_port(ports["prometheus"], timeout=60)
        assert stack_status(data_dir)["_stack"]["state"] == "running"
    finally:
        process.kill()  # no chance to stop anything or to write the state file
        process.communicate(timeout=30)

    def closed(port: int) -> bool:
        try:
            wait_for_port(port, timeout=0.2)
        except TimeoutError:
            return True
        return False

    wait_until(
        lambda: all(closed(p) for p in ports.values()),
        30,
        "every port closed after the stack died",
        every=0.1,
    )
    status = stack_status(data_dir)
    assert status["_stack"]["state"] == "stopped" and "without stopping cleanly" in status["_stack"]["note"]
    assert status["service"]["state"] == "stopped" and status["service"]["pid"] is None
    table = subprocess.run(
        [sys.executable, "-m", "jamey_engine", "--data-dir", str(data_dir), "stack", "status"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("stack stopped (pid ") and "without stopping cleanly" in lines[0]
    assert lines[1].split() == ["name", "state", "pid", "restarts", "uptime", "url"]
    assert lines[2].split() == ["service", "stopped", "-", "0", "-", f"http://127.0.0.1:{ports['service']}"]


def test_the_stacks_processes_use_the_database_the_stack_was_given_by_flag(
    data_dir: Path, ports: dict[str, int], tmp_path: Path
) -> None:
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    process = start_stack(data_dir, ports, None, before=("--database-url", elsewhere))
    try:
        keys = KEY_PATTERN.findall(read_until(process, "Ctrl-C stops everything"))
        assert len(keys) == 1
        wait_until(lambda: healthy(f"http://127.0.0.1:{ports['service']}"), 60, "the service up", every=0.1)
        answer = httpx.get(
            f"http://127.0.0.1:{ports['service']}/admin/keys",
            headers={"Authorization": f"Bearer {keys[0]}"},
            timeout=5,
        )
        assert answer.status_code == 200, "the service must know the key the stack made in that database"
    finally:
        stop(process)
    assert (tmp_path / "elsewhere.db").exists() and not (data_dir / "jamey.db").exists()
