"""A real nginx with the project's rendered configuration, a self-signed certificate from
openssl and a real upstream (uvicorn) behind it, all on loopback high ports."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import free_port, wait_for_port
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
    port = free_port()
    log = (tmp_path_factory.mktemp("upstream") / "uvicorn.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "upstream_app:app", "--app-dir", str(HERE),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


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
    process = start_nginx(prefix, settings)
    server = Nginx(settings, certificate, prefix, upstream)
    try:
        yield server
    finally:
        stop_nginx(process)


def start_nginx(prefix: Path, settings: NginxSettings) -> subprocess.Popen[bytes]:
    """Render ``settings`` under ``prefix``, check it with ``nginx -t``, start nginx in the
    foreground and wait until its three ports listen."""
    binary = require_binary("nginx")
    site = prefix / "jamey.conf"
    site.write_text(render(settings))
    main = prefix / "nginx.conf"
    main.write_text(render_standalone(site, prefix))
    command = [binary, "-p", str(prefix), "-c", str(main), "-e", str(prefix / "error.log")]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(
        [*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for port in (settings.http_port, settings.https_port, settings.workbench_port):
            wait_for_port(port)
    except TimeoutError:
        stop_nginx(process)
        raise AssertionError((prefix / "error.log").read_text(errors="replace")[-3000:]) from None
    return process


def stop_nginx(process: subprocess.Popen[bytes]) -> None:
    """Stop nginx (SIGTERM, then SIGKILL after 20 s)."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
