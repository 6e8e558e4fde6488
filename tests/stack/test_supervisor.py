"""The supervisor with real (tiny) processes: backoff, giving up, process groups, spawn failures."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import wait_until

from jamey_engine.stack.supervisor import Component, RestartPolicy, Supervisor

FAST = RestartPolicy(first_delay=0.05, max_delay=0.1, give_up_after=3, window=60)


def component(tmp_path: Path, name: str, script: str) -> Component:
    return Component(name=name, command=["/bin/sh", "-c", script], url="", log_path=tmp_path / f"{name}.log")


def poll_until(supervisor: Supervisor, condition: Callable[[], bool], timeout: float = 30.0) -> None:

    def polled() -> bool:
        supervisor.poll()
        return condition()

    try:
        wait_until(polled, timeout, "the condition", every=0.02)
    except AssertionError as failed:
        raise AssertionError(f"{failed}: {[(c.name, c.state) for c in supervisor.components]}") from None


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


STUBBORN = """
import signal, sys, time
def ignore(signum, frame):
    print("got SIGTERM, ignoring it", flush=True)
signal.signal(signal.SIGTERM, ignore)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period_and_reported(tmp_path: Path) -> None:
    said: list[str] = []
    stubborn = Component(
        name="stubborn",
        command=[sys.executable, "-c", STUBBORN],
        url="",
        log_path=tmp_path / "stubborn.log",
    )
    polite = component(tmp_path, "polite", "exec sleep 60")
    supervisor = Supervisor([stubborn, polite], FAST, said.append)
    supervisor.start_all()
    assert stubborn.process is not None and polite.process is not None
    wait_until(lambda: "ready" in stubborn.log_path.read_text(), 60, "the stubborn child's SIGTERM handler")
    grace = 1.0
    asked = time.monotonic()
    supervisor.stop_all(timeout=grace)
    # A lower bound only (a loaded machine can make it later, never earlier): it had its grace.
    assert time.monotonic() - asked >= grace
    assert stubborn.process.returncode == -signal.SIGKILL, "SIGKILL ended it"
    assert "got SIGTERM, ignoring it" in stubborn.log_path.read_text(), "SIGTERM came first"
    assert polite.process.returncode == -signal.SIGTERM, "a child that obeys SIGTERM is not killed"
    report = f"stubborn did not stop within {grace:g} s of SIGTERM: killed it (SIGKILL)"
    assert said == [report], said  # on the terminal, for the stubborn one only
    assert report in stubborn.log_path.read_text() and "SIGKILL" not in polite.log_path.read_text()
    assert stubborn.state == "stopped" and polite.state == "stopped"
