"""Fixtures for the abuse tests: real apps and real ``jamey serve`` processes on temporary data
dirs, built with the service tests' helpers (imported from ``tests/service``)."""

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
    """Start real ``jamey serve`` processes; each is stopped when the test ends."""
    servers: list[RunningServer] = []

    def start(**env: str) -> RunningServer:
        data_dir = tmp_path / f"served{len(servers)}"
        data_dir.mkdir()
        server = start_server(data_dir, tmp_path / f"serve{len(servers)}.log", **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        stop_server(server)
