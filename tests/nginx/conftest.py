"""A real nginx with the project's rendered configuration, a self-signed certificate from
openssl and a real upstream (uvicorn) behind it, all on loopback high ports."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from helpers import free_port, start_on_free_port, wait_for_own_port
from promserver import require_binary

from jamey_engine.nginxconf import NginxSettings, render, render_standalone

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def client_context(
        self, *, minimum: ssl.TLSVersion | None = None, maximum: ssl.TLSVersion | None = None
    ) -> ssl.SSLContext:
        """A verifying client context that trusts this certificate only."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(self.cert)
        if minimum:
            context.minimum_version = minimum
        if maximum:
            context.maximum_version = maximum
        return context


@dataclass(frozen=True)
class Nginx:
    settings: NginxSettings
    certificate: Certificate
    prefix: Path
    upstream_port: int

    @property
    def https(self) -> int:
        return self.settings.https_port

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for localhost and 127.0.0.1, made by openssl."""
    openssl = require_binary("openssl")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    done = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return Certificate(cert, key)


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """tests/nginx/upstream_app.py under uvicorn: the service and the workbench stand-in."""
    log_path = tmp_path_factory.mktemp("upstream") / "uvicorn.log"

    def launch(port: int) -> subprocess.Popen[bytes]:
        with log_path.open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "upstream_app:app", "--app-dir", str(HERE),
                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    process, port = start_on_free_port(launch)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="session")
def nginx(
    tmp_path_factory: pytest.TempPathFactory, certificate: Certificate, upstream: int
) -> Iterator[Nginx]:
    """nginx running nginx/jamey.conf.template rendered for loopback ports and the test cert."""
    prefix = tmp_path_factory.mktemp("nginx")
    settings = NginxSettings(
        server_name="localhost 127.0.0.1",
        listen_address="127.0.0.1",
        http_port=free_port(),
        https_port=free_port(),
        workbench_port=free_port(),
        certificate=str(certificate.cert),
        certificate_key=str(certificate.key),
        service_upstream=f"127.0.0.1:{upstream}",
        workbench_upstream=f"127.0.0.1:{upstream}",
        rate="10r/s",
        burst=5,
    )
    process, settings = start_nginx(prefix, settings)
    server = Nginx(settings, certificate, prefix, upstream)
    try:
        yield server
    finally:
        stop_nginx(process)


def start_nginx(
    prefix: Path, settings: NginxSettings, attempts: int = 3
) -> tuple[subprocess.Popen[bytes], NginxSettings]:
    """Render ``settings`` under ``prefix``, check it with ``nginx -t``, start nginx in the
    foreground and wait until it listens on its three ports itself; returns the process and
    the settings it runs with (fresh free ports if another process took one meanwhile)."""
    binary = require_binary("nginx")
    site = prefix / "jamey.conf"
    main = prefix / "nginx.conf"
    command = [binary, "-p", str(prefix), "-c", str(main), "-e", str(prefix / "error.log")]
    for _ in range(attempts):
        site.write_text(render(settings))
        main.write_text(render_standalone(site, prefix))
        check = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        process = subprocess.Popen(
            [*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            if all(
                wait_for_own_port(process, port)
                for port in (settings.http_port, settings.https_port, settings.workbench_port)
            ):
                return process, settings
        except TimeoutError:
            stop_nginx(process)
            raise AssertionError((prefix / "error.log").read_text(errors="replace")[-3000:]) from None
        settings = replace(
            settings, http_port=free_port(), https_port=free_port(), workbench_port=free_port()
        )
    raise AssertionError((prefix / "error.log").read_text(errors="replace")[-3000:])


def stop_nginx(process: subprocess.Popen[bytes]) -> None:
    """Stop nginx (SIGTERM, then SIGKILL after 20 s)."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
