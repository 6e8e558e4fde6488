"""Keep a set of processes running: restart one that exits unexpectedly, with exponential backoff,
and give up on a crash loop without touching the others.

``Supervisor`` owns the processes of ``jamey stack``. Each ``Component`` runs in its own process
group (so a stop or a crash also takes down what it spawned, such as nginx's workers) and logs to
its own file; restarts and giving up are said on the terminal (``echo``) and in that log.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

ComponentState = Literal["running", "restarting", "failed", "stopped"]


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart: the delay doubles from ``first_delay`` up to ``max_delay`` with each exit
    in the last ``window`` seconds, and ``give_up_after`` exits within ``window`` stop the restarts."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    give_up_after: int = 5
    window: float = 120.0

    def delay(self, recent_failures: int) -> float:
        """Seconds to wait before the next start, after ``recent_failures`` exits in the window."""
        exponent = max(0, recent_failures - 1)
        return float(min(self.max_delay, self.first_delay * 2 ** min(exponent, 32)))


@dataclass
class Component:
    """One supervised process: what it runs, where it logs, and where users reach it."""

    name: str
    command: list[str]
    url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    state: ComponentState = "stopped"
    restarts: int = 0
    started_at: float | None = None  # wall clock of the current process's start
    next_start: float | None = None  # monotonic time of the pending restart
    failures: deque[float] = field(default_factory=deque)  # monotonic times of recent exits

    @property
    def pid(self) -> int | None:
        """The running process's id, or None."""
        if self.process is not None and self.state == "running":
            return self.process.pid
        return None


@dataclass
class Supervisor:
    """Starts, restarts and stops ``components``; ``on_change`` runs after every state change."""

    components: list[Component]
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    echo: Callable[[str], None] = print
    on_change: Callable[[Supervisor], None] = lambda supervisor: None

    def start_all(self) -> None:
        """Start every component once."""
        for component in self.components:
            self._spawn(component)
        self.on_change(self)

    def poll(self) -> None:
        """One round: notice exits, schedule restarts with backoff, run restarts that are due."""
        changed = False
        now = time.monotonic()
        for component in self.components:
            process = component.process
            if component.state == "running" and process is not None and process.poll() is not None:
                self._on_exit(component, process.returncode, now)
                changed = True
            elif (
                component.state == "restarting"
                and component.next_start is not None
                and now >= component.next_start
            ):
                component.restarts += 1
                self._spawn(component)
                changed = True
        if changed:
            self.on_change(self)

    def run(self, should_stop: Callable[[], bool], interval: float = 0.2) -> None:
        """Poll until ``should_stop()`` is true."""
        while not should_stop():
            self.poll()
            time.sleep(interval)

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every component: SIGTERM to its process group, SIGKILL after ``timeout`` seconds."""
        running = [c for c in self.components if c.process is not None and c.process.poll() is None]
        for component in running:
            assert component.process is not None
            _signal_group(component.process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for component in running:
            assert component.process is not None
            try:
                component.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(component.process, signal.SIGKILL)
                component.process.wait()
                # Killed without a chance to clean up: whoever reads the terminal or its log should know.
                self._say(
                    component,
                    f"{component.name} did not stop within {timeout:g} s of SIGTERM: killed it (SIGKILL)",
                )
        for component in running:
            assert component.process is not None
            # Leftovers of the group. Only groups whose leader was reaped just now: the id of
            # one reaped long ago may belong to someone else's process group by now.
            _signal_group(component.process, signal.SIGKILL)
        for component in self.components:
            if component.state != "failed":  # keep the record of a give-up
                component.state = "stopped"
            component.started_at = None
            component.next_start = None
        self.on_change(self)

    def _on_exit(self, component: Component, code: int, now: float) -> None:
        if component.process is not None:
            _signal_group(component.process, signal.SIGKILL)  # children it left behind
        component.started_at = None
        component.failures.append(now)
        while component.failures and now - component.failures[0] > self.policy.window:
            component.failures.popleft()
        recent = len(component.failures)
        if recent >= self.policy.give_up_after:
            component.state = "failed"
            component.next_start = None
            self._say(
                component,
                f"{component.name} exited with code {code}, {recent} times within "
                f"{self.policy.window:g} s: not restarting it again; the others keep running",
            )
            return
        delay = self.policy.delay(recent)
        component.state = "restarting"
        component.next_start = now + delay
        self._say(component, f"{component.name} exited with code {code}; restarting it in {delay:g} s")

    def _spawn(self, component: Component) -> None:
        component.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with component.log_path.open("ab") as log:
                component.process = subprocess.Popen(
                    component.command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=component.cwd,
                    env=component.env or None,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
        except OSError as err:
            # Counted like an exit, so a missing binary ends in "failed" rather than a loop.
            self._say(component, f"{component.name} could not start: {err.strerror or err}")
            component.process = None
            self._on_exit(component, 127, time.monotonic())
            return
        component.state = "running"
        component.next_start = None
        component.started_at = time.time()
        if component.restarts:
            self._say(
                component,
                f"{component.name} restarted (pid {component.process.pid}, restart {component.restarts})",
            )

    def _say(self, component: Component, message: str) -> None:
        self.echo(message)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            with component.log_path.open("a", encoding="utf-8") as log:
                log.write(f"[jamey stack {stamp}] {message}\n")
        except OSError:
            pass  # the terminal still has it


def _die_with_parent() -> None:
    """In the child before exec: ask Linux for SIGTERM when the supervisor dies, even by kill -9,
    so no orphan keeps a port."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.pid <= 0:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
