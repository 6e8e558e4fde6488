"""`make run` runs `jamey stack`: the real service, Prometheus and Alertmanager on loopback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import free_port, make_settings, wait_for_port

from jamey_engine.engine import Engine
from jamey_engine.keys import SCOPES

KEY_PATTERN = re.compile(r"\bjmy_[0-9A-Za-z]+_[0-9A-Za-z]+_[0-9A-Za-z]+\b")


def start_stack(
    data_dir: Path, ports: dict[str, int], env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "jamey_engine",
        "--data-dir",
        str(data_dir),
        "stack",
        "--port",
        str(ports["service"]),
        "--prometheus-port",
        str(ports["prometheus"]),
        "--alertmanager-port",
        str(ports["alertmanager"]),
        "--no-workbench",
    ]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def read_until(process: subprocess.Popen[str], marker: str, timeout: float = 60.0) -> str:
    """Everything the stack prints up to and including the line holding ``marker``."""
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} never printed; got:\n{''.join(seen)}")


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    return out


@pytest.fixture
def ports() -> Iterator[dict[str, int]]:
    yield {name: free_port() for name in ("service", "prometheus", "alertmanager")}


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
