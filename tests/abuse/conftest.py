"""Fixtures for the abuse reproductions: real apps and real ``jamey serve`` processes on
temporary data dirs (the service tests' helpers), and the workbench's AppTest personas."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from service.service_support import (
    RunningServer,
    TestClient,
    service_settings,
    start_server,
    stop_server,
    test_client,
)
from workbench.conftest import admin_app, admin_key, app, wb_env  # noqa: F401

from jamey_engine.engine import Engine
from jamey_engine.service import create_app


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
