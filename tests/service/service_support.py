"""Helpers for the service tests: key personas, metric samples and real `jamey serve` processes."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.models import ApiKey, RunbookSchedule
from jamey_engine.service import create_app

with warnings.catch_warnings():
    # starlette asks for httpx2; the pinned httpx works the same for the test client.
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

from helpers import start_on_free_port

ROOT = Path(__file__).resolve().parents[2]
BIG_LIMIT = "100000/minute"


@dataclass(frozen=True)
class Persona:
    """A real key: its plaintext ``key``, public ``id`` and ``name``."""

    key: str
    id: str
    name: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def secret(self) -> str:
        """The secret part of the token (between the lookup id and the checksum)."""
        return self.key.split("_")[2]


def service_settings(data_dir: Path, **env: str) -> Settings:
    """Settings for a service test in ``data_dir`` (global limit high unless given)."""
    base = {
        "JAMEY_DATA_DIR": str(data_dir),
        "JAMEY_GLOBAL_RATE_LIMIT": "1000000/minute",
        "JAMEY_METRICS_CACHE_SECONDS": "0",
    }
    return Settings.from_env({**base, **env})


def make_persona(engine: Engine, name: str, scopes: tuple[str, ...], rate_limit: str = BIG_LIMIT) -> Persona:
    created = engine.keys.create(name, scopes=scopes, rate_limit=rate_limit, actor="test")
    return Persona(created.key, created.id, name)


def make_due(engine: Engine, schedule_id: object, minutes_ago: int = 1) -> datetime:
    """Move a runbook schedule's next slot ``minutes_ago`` minutes into the past, as if the service
    had been down over it: the schedule loop runs it at its next pass (within its 5 s poll) rather
    than at the next real slot. The slot it was given."""
    table = RunbookSchedule.__table__
    missed = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
    with engine.db.begin() as conn:
        conn.execute(sa.update(table).where(table.c.id == schedule_id).values(next_run_at=missed))
    return missed


def age_key(engine: Engine, key_id: str) -> None:
    """Move a key's expiry into the past, as if its lifetime had run out."""
    with engine.db.session() as session:
        row = session.get(ApiKey, key_id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(hours=1)


def test_client(app: Any, **kwargs: Any) -> TestClient:
    """A TestClient that returns 500s (instead of raising) like a real server."""
    return TestClient(app, raise_server_exceptions=False, **kwargs)


test_client.__test__ = False  # type: ignore[attr-defined]


def sample(app_or_client: Any, name: str, labels: dict[str, str] | None = None) -> float:
    """The current value of one sample in the app's registry (0.0 when absent)."""
    app = getattr(app_or_client, "app", app_or_client)
    value = app.state.metrics.registry.get_sample_value(name, labels or {})
    return float(value) if value is not None else 0.0


@dataclass
class RunningServer:
    """A real ``jamey serve`` subprocess."""

    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    env: dict[str, str]
    log_path: Path

    def jamey(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the ``jamey`` CLI against the same data dir and database (another process)."""
        return subprocess.run(
            [sys.executable, "-m", "jamey_engine", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(data_dir: Path, log_path: Path, **env: str) -> RunningServer:
    """Start ``jamey serve`` on a free loopback port and wait until it listens there itself."""
    full_env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(data_dir),
        "JAMEY_GLOBAL_RATE_LIMIT": "1000000/minute",
        "JAMEY_METRICS_CACHE_SECONDS": "0",
        "JAMEY_LOG_LEVEL": "info",
        **env,
    }
    full_env.pop("API_KEY", None)

    def launch(port: int) -> subprocess.Popen[bytes]:
        with log_path.open("wb") as log_file:
            return subprocess.Popen(
                [sys.executable, "-m", "jamey_engine", "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=full_env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    try:  # several workers on a loaded machine: their start can take tens of seconds
        process, port = start_on_free_port(launch, timeout=60)
    except TimeoutError as exc:
        log = log_path.read_text(errors="replace")
        raise AssertionError(f"jamey serve did not start ({exc}):\n{log}") from None
    return RunningServer(process, f"http://127.0.0.1:{port}", data_dir, full_env, log_path)


def stop_server(server: RunningServer) -> None:
    """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=5)


def count_rows(engine: Engine, table: str) -> int:
    with engine.db.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


# --- fixtures the service and abuse tests share (imported by their conftests) -----------------


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., tuple[TestClient, Engine]]]:
    """Build an app on a fresh data dir with extra settings; returns (client, engine)."""
    with ExitStack() as stack:
        counter = 0

        def build(**env: str) -> tuple[TestClient, Engine]:
            nonlocal counter
            counter += 1
            data_dir = tmp_path / f"data{counter}"
            data_dir.mkdir()
            engine = Engine(service_settings(data_dir, **env))
            stack.callback(engine.close)
            client = stack.enter_context(test_client(create_app(engine)))
            return client, engine

        yield build


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start real ``jamey serve`` processes on ``tmp_path`` (or a given data dir); each is
    stopped when the test ends."""
    servers: list[RunningServer] = []

    def start(data_dir: Path | None = None, **env: str) -> RunningServer:
        folder = data_dir or tmp_path / f"served{len(servers)}"
        folder.mkdir(exist_ok=True)
        server = start_server(folder, tmp_path / f"serve{len(servers)}.log", **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        stop_server(server)
