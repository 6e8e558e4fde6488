"""The local stack behind `make run`: the service, Prometheus, Alertmanager and the workbench.

Every process binds to 127.0.0.1 and keeps its data under the data dir. A missing Prometheus
or Alertmanager binary is reported with the command that installs it, and the rest runs on.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.keys import SCOPES

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTALL_HINT = "install it with: apt-get install prometheus prometheus-alertmanager"


@dataclass
class StackPorts:
    """Where each part of the stack listens (all on 127.0.0.1)."""

    service: int = 3000
    prometheus: int = 9090
    alertmanager: int = 9093
    workbench: int = 8501


@dataclass
class Stack:
    """Starts, watches and stops the local stack's processes."""

    settings: Settings
    ports: StackPorts
    workbench: bool = True
    echo: Callable[[str], None] = print
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.settings.data_dir / "stack"

    def ensure_admin_key(self) -> str | None:
        """On a first run with no usable admin key, create one and return its plaintext (shown once)."""
        engine = Engine(self.settings)
        try:
            usable = [
                k for k in engine.keys.list() if "admin" in k.scopes and k.status in ("active", "expiring")
            ]
            if usable:
                return None
            created = engine.keys.create("first-run-admin", scopes=SCOPES, actor="jamey stack")
            return created.key
        finally:
            engine.close()

    def prometheus_config(self) -> Path:
        """The project's prometheus.yml with this stack's ports and absolute rule paths."""
        source = REPO_ROOT / "prometheus" / "prometheus.yml"
        config: dict[str, Any] = yaml.safe_load(source.read_text())
        config["rule_files"] = [str(source.parent / pattern) for pattern in config.get("rule_files", [])]
        for job in config.get("scrape_configs", []):
            for static in job.get("static_configs", []):
                if job.get("job_name") == "jamey":
                    static["targets"] = [f"127.0.0.1:{self.ports.service}"]
                elif job.get("job_name") == "prometheus":
                    static["targets"] = [f"127.0.0.1:{self.ports.prometheus}"]
        for alerting in config.get("alerting", {}).get("alertmanagers", []):
            for static in alerting.get("static_configs", []):
                static["targets"] = [f"127.0.0.1:{self.ports.alertmanager}"]
        target = self.run_dir / "prometheus.yml"
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        return target

    def commands(self) -> dict[str, list[str]]:
        """The command line of each process that can start here."""
        data = self.settings.data_dir
        commands: dict[str, list[str]] = {
            "service": [
                sys.executable,
                "-m",
                "jamey_engine",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports.service),
            ],
        }
        prometheus = shutil.which("prometheus")
        if prometheus:
            commands["prometheus"] = [
                prometheus,
                f"--config.file={self.prometheus_config()}",
                f"--storage.tsdb.path={data / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{self.ports.prometheus}",
                "--log.level=warn",
            ]
        else:
            self.echo(f"prometheus not found, going on without it; {INSTALL_HINT}")
        alertmanager = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if alertmanager:
            commands["alertmanager"] = [
                alertmanager,
                f"--config.file={REPO_ROOT / 'prometheus' / 'alertmanager.yml'}",
                f"--storage.path={data / 'alertmanager'}",
                f"--web.listen-address=127.0.0.1:{self.ports.alertmanager}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ]
        else:
            self.echo(f"alertmanager not found, going on without it; {INSTALL_HINT}")
        if self.workbench and (REPO_ROOT / "app.py").exists():
            commands["workbench"] = [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(REPO_ROOT / "app.py"),
                "--server.address",
                "127.0.0.1",
                "--server.port",
                str(self.ports.workbench),
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ]
        return commands

    def start(self) -> None:
        """Start every process that can run here and print where each one listens."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name, command in self.commands().items():
            logfile = (self.run_dir / f"{name}.log").open("ab")
            env = {
                **_environ(),
                "JAMEY_DATA_DIR": str(self.settings.data_dir),
                "JAMEY_SERVICE_URL": f"http://127.0.0.1:{self.ports.service}",
                "PROMETHEUS_URL": f"http://127.0.0.1:{self.ports.prometheus}",
            }
            self.processes[name] = subprocess.Popen(
                command,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                env=env,
                start_new_session=True,
            )
        urls = {
            "service": f"http://127.0.0.1:{self.ports.service}",
            "prometheus": f"http://127.0.0.1:{self.ports.prometheus}",
            "alertmanager": f"http://127.0.0.1:{self.ports.alertmanager}",
            "workbench": f"http://127.0.0.1:{self.ports.workbench}",
        }
        for name in self.processes:
            self.echo(f"{name:<13} {urls[name]}   (log: {self.run_dir / (name + '.log')})")

    def watch(self) -> int:
        """Block until Ctrl-C/SIGTERM or until the service exits; return the exit code to use."""
        stop = {"signal": False}

        def on_signal(signum: int, frame: object) -> None:
            stop["signal"] = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not stop["signal"]:
            for name, process in list(self.processes.items()):
                if process.poll() is not None:
                    self.echo(
                        f"{name} exited with code {process.returncode}; see {self.run_dir / (name + '.log')}"
                    )
                    del self.processes[name]
                    if name == "service":
                        return 1
            time.sleep(0.2)
        return 0

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every process: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)
