"""`make notebooks` starts JupyterLab on 127.0.0.1 as root and as a user without a home, and stops.

The venv is already installed here, so make is told not to remake its stamps (``-o``); the
target's recipe (tools/notebooks) runs for real. The non-root user (``nobody``) cannot read the
shared venv's interpreter under /root, so it gets a venv of the system Python of the same
version whose site-packages points at the shared one: the same packages, readable by anyone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 90


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    response = httpx.get(url, timeout=5)
    return response.status_code, response.content


def _run_jupyterlab(
    command: list[str], env: dict[str, str], log: Path, port: int, token: str
) -> dict[str, object]:
    """Start ``command``, wait until JupyterLab answers, read its kernels, stop it; return what it saw."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    seen: dict[str, object] = {}
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert process.poll() is None, f"it exited with {process.returncode}:\n{log.read_text()}"
            try:
                status, body = _get(f"http://127.0.0.1:{port}/api/kernelspecs?token={token}")
            except httpx.TransportError:
                time.sleep(0.5)
                continue
            seen["kernelspecs"] = json.loads(body) if status == 200 else None
            seen["without_token"] = _get(f"http://127.0.0.1:{port}/api/kernelspecs")[0]
            seen["user"] = subprocess.run(
                ["ps", "-o", "user=", "--sid", str(process.pid)], capture_output=True, text=True, check=False
            ).stdout.split()
            break
        else:
            raise AssertionError(f"no answer on port {port} within {STARTUP_SECONDS}s:\n{log.read_text()}")
    finally:
        _stop(process)
    # runuser may exit before JupyterLab (which got the same SIGTERM) has closed its socket.
    deadline = time.monotonic() + 20
    while True:
        with socket.socket() as sock:
            seen["port_free_after"] = sock.connect_ex(("127.0.0.1", port)) != 0
        if seen["port_free_after"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    seen["log"] = log.read_text()
    return seen


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the group this test started (make, the launcher, JupyterLab), SIGKILL if it lingers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _environment(port: int, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "MAKE", "MFLAGS"))}
    env.update({"JUPYTER_PORT": str(port), "JUPYTER_TOKEN": token})
    return env


def _check(seen: dict[str, object], port: int, token: str) -> None:
    log = str(seen["log"])
    assert f"Open: http://127.0.0.1:{port}/lab?token={token}" in log, log
    specs = seen["kernelspecs"]
    assert isinstance(specs, dict) and specs["default"] == "python3", log
    assert seen["without_token"] == 403
    assert seen["port_free_after"], "JupyterLab still answers after it was stopped"


def test_make_notebooks_starts_jupyterlab_as_root_and_stops(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "this test checks the root case; run the suite as root (as CI does)"
    port, token = _free_port(), "roottoken" + str(os.getpid())
    # The stamps as the Makefile names them (relative), so make never rebuilds the venv here.
    command = [
        "make",
        "-C",
        str(ROOT),
        "-o",
        ".venv/.installed",
        "-o",
        ".venv/.notebooks-installed",
        "notebooks",
    ]
    seen = _run_jupyterlab(command, _environment(port, token), tmp_path / "root.log", port, token)
    _check(seen, port, token)
    assert "root" in seen["user"]  # type: ignore[operator]


@pytest.fixture
def readable_venv() -> Iterator[Path]:
    """A venv anyone can run: this Python version from /usr/bin, with this venv's packages."""
    system_python = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    assert system_python.exists(), f"{system_python} is needed to give the test user a Python it can read"
    scratch = Path(tempfile.mkdtemp(prefix="jamey-nb-venv-", dir="/tmp"))
    venv = scratch / "venv"
    subprocess.run([str(system_python), "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    (purelib / "shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for path in [scratch, *scratch.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else path.stat().st_mode | 0o444)
    yield venv
    shutil.rmtree(scratch, ignore_errors=True)


def test_make_notebooks_starts_jupyterlab_as_a_user_without_a_home_and_stops(readable_venv: Path) -> None:
    port, token = _free_port(), "usertoken" + str(os.getpid())
    log_dir = Path(tempfile.mkdtemp(prefix="jamey-nb-log-", dir="/tmp"))
    try:
        command = [
            "runuser", "-u", "nobody", "--",
            "make", "-C", str(ROOT), f"VENV={readable_venv}",
            "-o", f"{readable_venv}/.installed", "-o", f"{readable_venv}/.notebooks-installed", "notebooks",
        ]  # fmt: skip
        seen = _run_jupyterlab(command, _environment(port, token), log_dir / "user.log", port, token)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    _check(seen, port, token)
    assert "nobody" in seen["user"]  # type: ignore[operator]
    assert "--allow-root" not in str(seen["log"])
