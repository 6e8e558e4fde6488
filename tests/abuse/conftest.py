"""Fixtures for the abuse reproductions: the workbench's (AppTest on a temporary data dir, key
personas) and real `jamey serve` processes, reused from tests/workbench and tests/service."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))

from service_support import RunningServer, start_server, stop_server
from workbench.conftest import admin_app, admin_key, app, wb_env  # noqa: F401


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start real ``jamey serve`` processes on ``tmp_path``; each is stopped when the test ends."""
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
