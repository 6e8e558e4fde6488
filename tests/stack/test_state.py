"""The stack's state file: atomic writes, uptime read at status time, a vanished stack reads as stopped."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from helpers import free_port, make_settings

from jamey_engine.errors import InvalidInput, NotFound, StorageCorrupt
from jamey_engine.stack import Stack, StackPorts
from jamey_engine.stack.state import read_status, state_path, write_state
from jamey_engine.stack.supervisor import Component


def components(tmp_path: Path) -> list[Component]:
    running = Component("service", ["x"], "http://127.0.0.1:3000", tmp_path / "service.log")
    running.state, running.restarts, running.started_at = "running", 2, 1000.0
    failed = Component("prometheus", ["x"], "http://127.0.0.1:9090", tmp_path / "prometheus.log")
    failed.state, failed.restarts = "failed", 4
    return [running, failed]


def test_status_reads_what_the_running_stack_wrote(tmp_path: Path) -> None:
    write_state(tmp_path, components(tmp_path), state="running", started_at=990.0)
    status = read_status(tmp_path, now=1012.5)
    assert status.state == "running" and status.note == ""
    service, prometheus = status.components
    assert (service.name, service.state, service.restarts, service.uptime_seconds) == (
        "service",
        "running",
        2,
        12.5,
    )
    assert (prometheus.state, prometheus.pid, prometheus.uptime_seconds) == ("failed", None, None)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"], "no temporary file is left behind"


def test_a_stack_that_vanished_without_stopping_reads_as_stopped(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    write_state(tmp_path, components(tmp_path), state="running", started_at=990.0, pid=dead.pid)
    status = read_status(tmp_path, now=1012.5)
    assert status.state == "stopped" and "without stopping cleanly" in status.note
    assert [c.state for c in status.components] == ["stopped", "failed"]


def test_without_a_state_file_it_says_no_stack_has_run(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no stack has run on this data dir"):
        read_status(tmp_path)


def test_a_damaged_state_file_is_reported_with_its_path(tmp_path: Path) -> None:
    state_path(tmp_path).write_text("{not json")
    with pytest.raises(StorageCorrupt, match=r"state\.json cannot be read"):
        read_status(tmp_path)


def test_a_second_stack_on_the_same_data_dir_is_refused_before_anything_starts(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    stack = Stack(settings, StackPorts(service=free_port()), workbench=False)
    write_state(stack.run_dir, components(tmp_path), state="running", started_at=990.0, pid=os.getpid())
    expected = f"a stack is already running on {tmp_path} (pid {os.getpid()})"
    with pytest.raises(InvalidInput, match=re.escape(expected)):
        stack.prepare()
    assert stack.supervisor is None
