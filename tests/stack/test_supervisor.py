"""The supervisor with real (tiny) processes: backoff, giving up, process groups, spawn failures."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jamey_engine.stack.supervisor import Component, RestartPolicy, Supervisor

FAST = RestartPolicy(first_delay=0.05, max_delay=0.1, give_up_after=3, window=60)


def component(tmp_path: Path, name: str, script: str) -> Component:
    return Component(name=name, command=["/bin/sh", "-c", script], url="", log_path=tmp_path / f"{name}.log")


def poll_until(supervisor: Supervisor, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        supervisor.poll()
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(
        f"condition not met within {timeout}s: {[(c.name, c.state) for c in supervisor.components]}"
    )


def test_the_delay_doubles_from_one_second_up_to_thirty() -> None:
    policy = RestartPolicy()
    assert [policy.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_crash_loop_gives_up_after_the_limit_and_leaves_the_others_running(tmp_path: Path) -> None:
    said: list[str] = []
    crashing = component(tmp_path, "crashing", "echo hello from the crashing one; exit 3")
    steady = component(tmp_path, "steady", "exec sleep 60")
    supervisor = Supervisor([crashing, steady], FAST, said.append)
    supervisor.start_all()
    try:
        poll_until(supervisor, lambda: crashing.state == "failed")
        assert steady.state == "running" and steady.process is not None and steady.process.poll() is None
        assert crashing.restarts == 2, said
        assert said.count("crashing exited with code 3; restarting it in 0.05 s") == 1, said
        assert "crashing exited with code 3; restarting it in 0.1 s" in said
        assert "not restarting it again; the others keep running" in said[-1]
        log = crashing.log_path.read_text()
        assert log.count("hello from the crashing one") == 3 and "not restarting it again" in log
        supervisor.poll()
        assert crashing.state == "failed"  # no more starts
    finally:
        supervisor.stop_all(timeout=5)
    assert steady.state == "stopped" and crashing.state == "failed"


def test_a_command_that_cannot_run_is_counted_as_a_failure(tmp_path: Path) -> None:
    said: list[str] = []
    missing = Component(
        name="missing", command=[str(tmp_path / "no-such-binary")], url="", log_path=tmp_path / "m.log"
    )
    supervisor = Supervisor([missing], FAST, said.append)
    supervisor.start_all()
    poll_until(supervisor, lambda: missing.state == "failed")
    assert any("missing could not start" in line for line in said), said
    supervisor.stop_all(timeout=5)


def test_stopping_takes_down_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    parent = component(tmp_path, "parent", f"sleep 60 & echo $! > {pid_file}; wait")
    supervisor = Supervisor([parent], FAST)
    supervisor.start_all()
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.02)
    child = int(pid_file.read_text())
    supervisor.stop_all(timeout=5)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        if Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":
            break  # exited, waiting to be reaped by init
        time.sleep(0.05)
    else:
        pytest.fail(f"the child {child} outlived its stopped parent")
    assert parent.state == "stopped" and parent.pid is None


def test_between_an_exit_and_its_restart_the_component_is_restarting_without_a_pid(tmp_path: Path) -> None:
    said: list[str] = []
    slow = RestartPolicy(first_delay=30, max_delay=30, give_up_after=5, window=120)
    exiting = component(tmp_path, "exiting", "exit 0")
    changes: list[str] = []
    supervisor = Supervisor([exiting], slow, said.append, lambda s: changes.append(exiting.state))
    supervisor.start_all()
    poll_until(supervisor, lambda: exiting.state == "restarting")
    assert exiting.pid is None and exiting.started_at is None and exiting.restarts == 0
    assert said == ["exiting exited with code 0; restarting it in 30 s"]
    supervisor.stop_all(timeout=5)
    assert exiting.state == "stopped" and changes == ["running", "restarting", "stopped"]
