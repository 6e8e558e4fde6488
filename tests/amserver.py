"""A real Alertmanager (Debian's prometheus-alertmanager 0.25) for tests, on a free port.

``start_alertmanager(workdir, service_url=..., credentials=...)`` renders the project's
prometheus/alertmanager.yml with jamey_engine's own renderer (webhooks pointed at the test's
service and credentials file), shortens the timers (group_wait, group_interval,
repeat_interval) so tests wait seconds, not minutes, and returns once it answers /-/ready.
A missing binary fails the test (never skips).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from helpers import closed_port, start_on_free_port
from promserver import REPO, require_binary

from jamey_engine.observability.alert_receiver import render_alertmanager_config

SOURCE = REPO / "prometheus" / "alertmanager.yml"


@dataclass
class AmServer:
    """A running Alertmanager: its URL, config file and process."""

    url: str
    config: Path
    workdir: Path
    process: subprocess.Popen[bytes]

    def api(self, path: str, payload: Any = None, method: str | None = None) -> Any:
        """A raw v2 API call (checks independent of jamey_engine's client)."""
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(  # noqa: S310 (our http URL)
            f"{self.url}{path}", data=data, headers={"Content-Type": "application/json"}, method=method
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (our http URL)
            body = response.read()
        return json.loads(body) if body else None

    def post_alerts(self, *alerts: dict[str, Any]) -> None:
        """Post alerts to /api/v2/alerts, as Prometheus does."""
        self.api("/api/v2/alerts", list(alerts))

    def log(self) -> str:
        path = self.workdir / "alertmanager.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_alertmanager(
    workdir: Path,
    *,
    service_url: str | None = None,
    credentials: Path | None = None,
    timers: str = "1s",
    repeat: str = "1m",
) -> AmServer:
    """Start Alertmanager with the project's config rendered for ``service_url`` and
    ``credentials`` (a file holding a key; an empty one by default) and short timers. Without
    ``service_url`` the webhooks point at a closed port."""
    service_url = service_url or f"http://127.0.0.1:{closed_port()}"
    binary = require_binary("prometheus-alertmanager", "alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    if credentials is None:
        credentials = workdir / "none.credentials"
        credentials.write_text("jmy_none\n")
        credentials.chmod(0o600)
    config = render_alertmanager_config(SOURCE, workdir / "alertmanager.yml", service_url, credentials)
    rendered = yaml.safe_load(config.read_text())
    rendered["route"].update(group_wait=timers, group_interval=timers, repeat_interval=repeat)
    for route in rendered["route"].get("routes", []):
        if "repeat_interval" in route:
            route["repeat_interval"] = repeat
    config.write_text(yaml.safe_dump(rendered, sort_keys=False))

    def launch(port: int) -> subprocess.Popen[bytes]:
        with (workdir / "alertmanager.log").open("wb") as log:
            return subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.path={workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=debug"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    try:
        process, port = start_on_free_port(launch, timeout=30)
    except TimeoutError as exc:
        log = (workdir / "alertmanager.log").read_text(errors="replace")[-4000:]
        raise AssertionError(f"alertmanager did not start ({exc}):\n{log}") from None
    server = AmServer(f"http://127.0.0.1:{port}", config, workdir, process)
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, f"alertmanager exited:\n{server.log()}"
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1):  # noqa: S310 (our http URL)
                return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise AssertionError(f"alertmanager not ready within 30s:\n{server.log()}") from None
            time.sleep(0.2)


def alert(name: str, severity: str = "warning", **labels: str) -> dict[str, Any]:
    """An alert as Prometheus posts it (firing until resolved with ``resolved``)."""
    return {
        "labels": {"alertname": name, "severity": severity, "job": "jamey", **labels},
        "annotations": {"summary": f"{name} is {severity}", "runbook_url": "docs/alerts.md#runbook-backups"},
    }


def resolved(item: dict[str, Any]) -> dict[str, Any]:
    """The same alert, resolved now (endsAt in the past)."""
    ended = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    return {**item, "endsAt": ended}
