"""The local stack behind `make run`: the service, Prometheus, Alertmanager, the workbench and,
with ``--tls``, nginx in front of them, all supervised.

Every process binds to 127.0.0.1 and keeps its data under the data dir. A missing Prometheus
or Alertmanager binary is reported with the command that installs it, and the rest runs on.
A process that exits unexpectedly is restarted with backoff (``jamey_engine.stack.supervisor``);
the state of every process is kept in ``$JAMEY_DATA_DIR/stack/state.json``
(``jamey_engine.stack.state``) for ``jamey stack status``.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jamey_engine import ports
from jamey_engine.config import Settings, without_settings
from jamey_engine.engine import Engine
from jamey_engine.errors import InvalidInput, NotFound, StorageCorrupt
from jamey_engine.keys import SCOPES
from jamey_engine.nginxconf import NginxSettings, render, render_standalone
from jamey_engine.stack.selfsigned import CertificatePair, ensure_self_signed
from jamey_engine.stack.state import read_status, write_state
from jamey_engine.stack.supervisor import Component, RestartPolicy, Supervisor

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
INSTALL_HINT = "install it with: apt-get install prometheus prometheus-alertmanager"
NGINX_HINT = "install it with: apt-get install nginx-light"
# The processes that are Jamey itself and read its settings; every other gets none of them.
JAMEY_COMPONENTS = frozenset({"service", "workbench"})

# Each port: the setting that chooses it and the `jamey stack` flag that overrides it.
PORT_SOURCES: dict[str, tuple[str, str]] = {
    "service": ("JAMEY_PORT", "--port"),
    "prometheus": ("JAMEY_PROMETHEUS_PORT", "--prometheus-port"),
    "alertmanager": ("JAMEY_ALERTMANAGER_PORT", "--alertmanager-port"),
    "workbench": ("JAMEY_WORKBENCH_PORT", "--workbench-port"),
    "nginx_https": ("JAMEY_NGINX_HTTPS_PORT", "--nginx-https-port"),
    "nginx_http": ("JAMEY_NGINX_HTTP_PORT", "--nginx-http-port"),
    "nginx_workbench": ("JAMEY_NGINX_WORKBENCH_PORT", "--nginx-workbench-port"),
}


@dataclass
class StackPorts:
    """Where each part of the stack listens (all on 127.0.0.1)."""

    service: int = ports.SERVICE
    prometheus: int = ports.PROMETHEUS
    alertmanager: int = ports.ALERTMANAGER
    workbench: int = ports.WORKBENCH
    nginx_https: int = ports.NGINX_HTTPS
    nginx_http: int = ports.NGINX_HTTP
    nginx_workbench: int = ports.NGINX_WORKBENCH

    @classmethod
    def from_settings(cls, settings: Settings, **flags: int | None) -> StackPorts:
        """The settings' ports, with any flag that is not None winning."""
        ports = cls(
            service=settings.port,
            prometheus=settings.prometheus_port,
            alertmanager=settings.alertmanager_port,
            workbench=settings.workbench_port,
            nginx_https=settings.nginx_https_port,
            nginx_http=settings.nginx_http_port,
            nginx_workbench=settings.nginx_workbench_port,
        )
        for name, value in flags.items():
            if value is not None:
                setattr(ports, name, value)
        return ports


def check_ports(ports: StackPorts, names: list[str], host: str = "127.0.0.1") -> None:
    """Raise InvalidInput, in one line naming the port and its setting, when two of ``names``
    share a port or one of them is already in use on ``host``."""
    seen: dict[int, str] = {}
    for name in names:
        port = getattr(ports, name)
        variable, flag = PORT_SOURCES[name]
        if port in seen:
            other = PORT_SOURCES[seen[port]][0]
            raise InvalidInput(f"port {port} is given to both {other} and {variable}; give each its own port")
        seen[port] = name
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As the servers do: a port with only TIME_WAIT leftovers is free to listen on.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as err:
                reason = "already in use" if err.errno == errno.EADDRINUSE else (err.strerror or str(err))
                raise InvalidInput(
                    f"port {port} ({variable}) is {reason} on {host}; stop what uses it or set "
                    f"{variable} (or {flag}) to a free port"
                ) from None


@dataclass
class Stack:
    """Builds, starts, supervises and stops the local stack's processes."""

    settings: Settings
    ports: StackPorts
    workbench: bool = True
    tls: bool = False
    scrape_interval: str | None = None  # None: prometheus/prometheus.yml's own
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    echo: Callable[[str], None] = print
    supervisor: Supervisor | None = None
    started_at: float = 0.0
    certificate: CertificatePair | None = None
    stopping: bool = False
    stop_requested: bool = False

    @property
    def run_dir(self) -> Path:
        """Where the stack keeps its logs, rendered configs and state file."""
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

    def _rendered_rules(self, folder: Path, patterns: list[str]) -> list[str]:
        """The rule files copied to the run dir with runbook links on JAMEY_WORKBENCH_URL."""
        from jamey_engine.runbooks.links import render_alert_rules

        rules_dir = self.run_dir / "rules"
        rules_dir.mkdir(parents=True, exist_ok=True)
        for pattern in patterns:
            for path in sorted(folder.glob(pattern)):
                text = render_alert_rules(path.read_text(), self.settings.workbench_url)
                (rules_dir / path.name).write_text(text)
        return [str(rules_dir / Path(pattern).name) for pattern in patterns]

    def prometheus_config(self) -> Path:
        """The project's prometheus.yml with this stack's ports and absolute rule paths."""
        source = REPO_ROOT / "prometheus" / "prometheus.yml"
        config: dict[str, Any] = yaml.safe_load(source.read_text())
        config["rule_files"] = self._rendered_rules(source.parent, config.get("rule_files", []))
        if self.scrape_interval:
            config.setdefault("global", {})["scrape_interval"] = self.scrape_interval
            config["global"]["evaluation_interval"] = self.scrape_interval
            # A scrape must end before the next begins.
            config["global"]["scrape_timeout"] = self.scrape_interval
        for job in config.get("scrape_configs", []):
            for static in job.get("static_configs", []):
                if job.get("job_name") == "jamey":
                    static["targets"] = [f"127.0.0.1:{self.ports.service}"]
                elif job.get("job_name") == "prometheus":
                    static["targets"] = [f"127.0.0.1:{self.ports.prometheus}"]
                elif job.get("job_name") == "alertmanager":
                    static["targets"] = [f"127.0.0.1:{self.ports.alertmanager}"]
        for alerting in config.get("alerting", {}).get("alertmanagers", []):
            for static in alerting.get("static_configs", []):
                static["targets"] = [f"127.0.0.1:{self.ports.alertmanager}"]
        target = self.run_dir / "prometheus.yml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        return target

    def alertmanager_config(self) -> Path:
        """The project's alertmanager.yml delivering to this stack's webhook receiver, with the
        receiver's alerts:write key created (once) in an owner-only credentials file. When that
        fails (the database is unusable), the project's file as it is, and a note saying why."""
        from jamey_engine.errors import JameyError
        from jamey_engine.observability.alert_receiver import prepare_alertmanager

        source = REPO_ROOT / "prometheus" / "alertmanager.yml"
        engine = Engine(self.settings)
        try:
            config, created = prepare_alertmanager(
                engine, source, self.run_dir, f"http://127.0.0.1:{self.ports.service}"
            )
        except JameyError as err:
            self.echo(f"alert history off: cannot set up the webhook receiver's key ({err.message})")
            return source
        finally:
            engine.close()
        if created:
            self.echo("created the alerts:write key Alertmanager delivers to the webhook with")
        return config

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
                f"--config.file={self.alertmanager_config()}",
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
                # app.py behind the workbench's security headers (CSP, frame protection)
                str(REPO_ROOT / "workbench_asgi.py"),
                "--server.address",
                "127.0.0.1",
                "--server.port",
                str(self.ports.workbench),
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ]
        if self.tls:
            commands["nginx"] = self.nginx_command()
        return commands

    def nginx_settings(self, certificate: CertificatePair) -> NginxSettings:
        """The project's nginx site, rendered for loopback: this stack's ports and certificate."""
        return NginxSettings(
            server_name="localhost 127.0.0.1",
            listen_address="127.0.0.1",
            http_port=self.ports.nginx_http,
            https_port=self.ports.nginx_https,
            workbench_port=self.ports.nginx_workbench,
            certificate=str(certificate.certificate),
            certificate_key=str(certificate.key),
            service_upstream=f"127.0.0.1:{self.ports.service}",
            workbench_upstream=f"127.0.0.1:{self.ports.workbench}",
        )

    def nginx_command(self) -> list[str]:
        """Render nginx's configuration under the run dir, check it with ``nginx -t`` and return
        the command that runs nginx in the foreground. Raises InvalidInput when nginx is missing
        or refuses the configuration; a first run also makes the self-signed certificate."""
        binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if binary is None:
            raise InvalidInput(f"--tls needs nginx, which is not installed; {NGINX_HINT}")
        certificate, made = ensure_self_signed(self.settings.data_dir / "tls")
        if made:
            self.echo(f"made a self-signed certificate: {certificate.certificate} (trust this file)")
        self.certificate = certificate
        prefix = self.run_dir / "nginx"
        prefix.mkdir(parents=True, exist_ok=True)
        site = prefix / "jamey.conf"
        site.write_text(render(self.nginx_settings(certificate)))
        main = prefix / "nginx.conf"
        main.write_text(render_standalone(site, prefix))
        command = [binary, "-p", str(prefix), "-c", str(main), "-e", str(prefix / "error.log")]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=60, check=False)
        if check.returncode != 0:
            problems = [line for line in check.stderr.splitlines() if "[emerg]" in line] or [
                (check.stderr.strip().splitlines() or ["no output"])[-1]
            ]
            raise InvalidInput(f"nginx refused the rendered configuration {site}: {problems[0]}")
        return [*command, "-g", "daemon off;"]

    def urls(self) -> dict[str, str]:
        """Where users reach each component."""
        return {
            "service": f"http://127.0.0.1:{self.ports.service}",
            "prometheus": f"http://127.0.0.1:{self.ports.prometheus}",
            "alertmanager": f"http://127.0.0.1:{self.ports.alertmanager}",
            "workbench": f"http://127.0.0.1:{self.ports.workbench}",
            "nginx": f"https://127.0.0.1:{self.ports.nginx_https}",
        }

    def port_names(self) -> list[str]:
        """The ports this stack will listen on, as StackPorts field names."""
        names = ["service", "prometheus", "alertmanager"]
        if self.workbench:
            names.append("workbench")
        if self.tls:
            names += ["nginx_https", "nginx_http", "nginx_workbench"]
        return names

    def prepare(self) -> Supervisor:
        """Check the ports and render every configuration, so that all refusals come before
        anything starts; return the supervisor of the components. Raises InvalidInput, and
        DataDirNotPrivate for a group- or world-accessible data dir (as every front door does;
        the processes inherit the owner-only umask, so their files are private too)."""
        from jamey_engine.privacy import check_data_dir

        check_data_dir(self.settings)
        self._refuse_a_second_stack()
        check_ports(self.ports, self.port_names())
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = {
            **os.environ,
            # What the stack was given by flag, its processes get too.
            "JAMEY_DATA_DIR": str(self.settings.data_dir),
            "JAMEY_DATABASE_URL": self.settings.database_url,
            "JAMEY_BACKUP_DIR": str(self.settings.backup_dir),
            "JAMEY_SERVICE_URL": f"http://127.0.0.1:{self.ports.service}",
            "PROMETHEUS_URL": f"http://127.0.0.1:{self.ports.prometheus}",
        }
        urls = self.urls()
        components = [
            Component(
                name=name,
                command=command,
                url=urls[name],
                log_path=self.run_dir / f"{name}.log",
                # Prometheus, Alertmanager and nginx need no Jamey setting, least of all a secret.
                env=env if name in JAMEY_COMPONENTS else without_settings(env),
                cwd=REPO_ROOT,
            )
            for name, command in self.commands().items()
        ]
        self.supervisor = Supervisor(components, self.policy, self.echo, self._save)
        return self.supervisor

    def start(self) -> None:
        """Start every process that can run here and print where each one listens."""
        supervisor = self.supervisor or self.prepare()
        # Before the first process starts: a Ctrl-C from here on stops the stack cleanly.
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.started_at = time.time()
        supervisor.start_all()
        for component in supervisor.components:
            self.echo(f"{component.name:<13} {component.url}   (log: {component.log_path})")
        if self.tls:
            self.echo(f"api (https)   https://127.0.0.1:{self.ports.nginx_https}")
            if self.workbench:
                self.echo(f"workbench (https) https://127.0.0.1:{self.ports.nginx_workbench}")
            if self.certificate is not None:
                self.echo(f"certificate   {self.certificate.certificate}")
        self.echo(f"status        jamey stack status   (state: {self.run_dir / 'state.json'})")

    def watch(self) -> int:
        """Supervise until Ctrl-C or SIGTERM; return 1 when a component gave up, else 0."""
        assert self.supervisor is not None, "start() first"
        self.supervisor.run(lambda: self.stop_requested)
        return 1 if any(c.state == "failed" for c in self.supervisor.components) else 0

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every process (SIGTERM, SIGKILL after ``timeout`` s); the state file says stopped."""
        if self.supervisor is None:
            return
        self.stopping = True
        self.supervisor.stop_all(timeout)

    def _refuse_a_second_stack(self) -> None:
        # Two stacks on one data dir would share the state file, the indexes' writers and
        # Prometheus's TSDB lock; different ports would not keep them apart.
        try:
            current = read_status(self.run_dir)
        except (NotFound, StorageCorrupt):
            return
        if current.state == "running":
            raise InvalidInput(
                f"a stack is already running on {self.settings.data_dir} (pid {current.pid}); "
                "stop it first (Ctrl-C there, or kill -TERM the pid), or use another --data-dir"
            )

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stop_requested = True

    def _save(self, supervisor: Supervisor) -> None:
        state = "stopped" if self.stopping else "running"
        try:
            write_state(self.run_dir, supervisor.components, state=state, started_at=self.started_at)
        except OSError as err:
            # A full disk must not take the supervision down with it; status is stale meanwhile.
            self.echo(f"could not write {self.run_dir / 'state.json'}: {err.strerror or err}")
