"""nginx/jamey.conf in a real nginx: TLS 1.3 only, redirect, headers, /metrics restriction,
rate limiting and websockets through to the workbench."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from promserver import REPO, require_binary
from websockets.sync.client import connect

from jamey_engine.errors import InvalidInput
from jamey_engine.nginxconf import NginxSettings, main, render, render_standalone

from .conftest import Nginx

SECURITY_HEADERS = (
    "Strict-Transport-Security",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Content-Security-Policy",
)


def get(
    nginx: Nginx, path: str, *, source: str = "127.0.0.1", port: int | None = None
) -> tuple[http.client.HTTPResponse, bytes]:
    """GET over TLS 1.3 from ``source`` (a loopback address), verifying the test certificate."""
    connection = http.client.HTTPSConnection(
        "127.0.0.1",
        port or nginx.https,
        context=nginx.certificate.client_context(),
        source_address=(source, 0),
        timeout=10,
    )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def handshake(nginx: Nginx, context: ssl.SSLContext) -> str:
    with (
        socket.create_connection(("127.0.0.1", nginx.https), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return str(tls.version())


# --- TLS ---------------------------------------------------------------------------------------


def test_tls_13_is_served(nginx: Nginx) -> None:
    context = nginx.certificate.client_context(minimum=ssl.TLSVersion.TLSv1_3)
    assert handshake(nginx, context) == "TLSv1.3"


def test_a_tls_12_handshake_is_refused(nginx: Nginx) -> None:
    context = nginx.certificate.client_context(maximum=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError, match=r"(?i)protocol version|alert"):
        handshake(nginx, context)


def test_the_workbench_port_refuses_tls_12_too(nginx: Nginx) -> None:
    context = nginx.certificate.client_context(maximum=ssl.TLSVersion.TLSv1_2)
    with (
        socket.create_connection(("127.0.0.1", nginx.settings.workbench_port), timeout=10) as raw,
        pytest.raises(ssl.SSLError),
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_plain_http_redirects_to_https_keeping_path_and_query(nginx: Nginx) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", nginx.settings.http_port, timeout=10)
    connection.request("GET", "/memories/episodic/search?q=hello")
    response = connection.getresponse()
    connection.close()
    assert response.status == 301
    assert (
        response.getheader("Location") == f"https://127.0.0.1:{nginx.https}/memories/episodic/search?q=hello"
    )


# --- proxying and headers ----------------------------------------------------------------------


def test_the_api_is_proxied_with_security_and_forwarding_headers(nginx: Nginx) -> None:
    response, body = get(nginx, "/memories/episodic?x=1")
    assert response.status == 200, body
    for header in SECURITY_HEADERS:
        assert response.getheader(header), header
    assert response.getheader("Strict-Transport-Security").startswith("max-age=")
    assert response.getheader("X-Frame-Options") == "DENY"
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert "default-src 'none'" in response.getheader("Content-Security-Policy")
    seen: dict[str, Any] = json.loads(body)
    assert seen["path"] == "/memories/episodic"
    assert seen["headers"]["x-forwarded-proto"] == "https"
    assert seen["headers"]["x-real-ip"] == "127.0.0.1"


def test_error_responses_carry_the_security_headers_too(nginx: Nginx) -> None:
    response, _ = get(nginx, "/metrics", source="127.0.0.2")
    assert response.status == 403
    for header in SECURITY_HEADERS:
        assert response.getheader(header), header


def test_metrics_are_refused_to_127_0_0_2(nginx: Nginx) -> None:
    response, body = get(nginx, "/metrics", source="127.0.0.2")
    assert response.status == 403
    assert b"upstream_metrics_total" not in body


def test_metrics_are_served_to_127_0_0_1(nginx: Nginx) -> None:
    response, body = get(nginx, "/metrics", source="127.0.0.1")
    assert response.status == 200
    assert body == b"upstream_metrics_total 1\n"


def test_a_burst_gets_429_and_health_is_never_limited(nginx: Nginx) -> None:
    # 127.0.0.3 has a bucket of its own (limits are per client address)
    responses = [get(nginx, f"/memories/episodic/search?n={n}", source="127.0.0.3")[0] for n in range(40)]
    statuses = [response.status for response in responses]
    assert statuses.count(200) >= 5
    assert statuses.count(429) >= 20, statuses
    assert set(statuses) <= {200, 429}
    refused = next(response for response in responses if response.status == 429)
    assert refused.getheader("Strict-Transport-Security")  # refusals carry the headers as well
    health = [get(nginx, "/health", source="127.0.0.3")[0].status for _ in range(40)]
    assert health == [200] * 40


# --- the workbench -----------------------------------------------------------------------------


def test_the_workbench_is_served_at_the_root_of_its_port_with_its_own_csp(nginx: Nginx) -> None:
    response, body = get(nginx, "/", port=nginx.settings.workbench_port)
    assert response.status == 200
    assert json.loads(body)["path"] == "/"
    assert response.getheader("X-Frame-Options") == "SAMEORIGIN"
    csp = response.getheader("Content-Security-Policy")
    assert "connect-src 'self';" in csp and "'unsafe-eval'" not in csp  # same-origin websocket only
    assert response.getheader("Strict-Transport-Security")


def test_websockets_pass_through_to_the_workbench(nginx: Nginx) -> None:
    url = f"wss://127.0.0.1:{nginx.settings.workbench_port}/_stcore/stream"
    with connect(url, ssl=nginx.certificate.client_context(), open_timeout=10) as websocket:
        assert websocket.recv(timeout=10) == "proto=https"
        websocket.send("hello")
        assert websocket.recv(timeout=10) == "echo:hello"
        websocket.send("again")
        assert websocket.recv(timeout=10) == "echo:again"


# --- rendering ---------------------------------------------------------------------------------


def test_the_committed_jamey_conf_is_the_template_rendered_with_the_defaults() -> None:
    assert (REPO / "nginx" / "jamey.conf").read_text() == render()


def test_the_default_configuration_passes_nginx_t(tmp_path: Path, nginx: Nginx) -> None:
    """The defaults with only the certificate paths swapped (the real ones need root)."""
    site = tmp_path / "jamey.conf"
    text = render().replace("/etc/ssl/jamey/fullchain.pem", str(nginx.certificate.cert))
    site.write_text(text.replace("/etc/ssl/jamey/privkey.pem", str(nginx.certificate.key)))
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_standalone(site, tmp_path))
    result = subprocess.run(
        [
            require_binary("nginx"),
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(conf),
            "-e",
            str(tmp_path / "error.log"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_rendering_puts_every_setting_in_place() -> None:
    text = render(
        NginxSettings(
            server_name="jamey.internal",
            https_port=8444,
            http_port=8080,
            workbench_port=9443,
            certificate="/certs/a.pem",
            certificate_key="/certs/a.key",
            service_upstream="10.0.0.5:3000",
            workbench_upstream="unix:/run/workbench.sock",
            rate="600r/m",
            burst=50,
            metrics_allow=("10.1.0.0/16",),
        )
    )
    assert "{{" not in text
    assert "listen 8080;" in text and "listen 8444 ssl http2;" in text and "listen 9443 ssl http2;" in text
    assert "return 301 https://$host:8444$request_uri;" in text
    assert text.count("ssl_certificate /certs/a.pem;") == 2
    assert "server 10.0.0.5:3000;" in text and "server unix:/run/workbench.sock;" in text
    assert "rate=600r/m" in text and "burst=50 nodelay" in text
    assert "allow 10.1.0.0/16;" in text and "allow 192.168.0.0/16;" not in text
    assert "return 301 https://$host$request_uri;" in render()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"https_port": 0}, "https_port must be a port between 1 and 65535, got 0"),
        ({"http_port": 443}, "must differ"),
        ({"certificate": "/etc/x.pem; evil"}, "certificate must be a file path"),
        ({"service_upstream": "localhost"}, "service_upstream must be host:port"),
        ({"rate": "10/s"}, "rate must look like 10r/s"),
        ({"burst": -1}, "burst must be a whole number"),
        (
            {"metrics_allow": ("everyone",)},
            "metrics_allow entries must be addresses or networks, got 'everyone'",
        ),
        ({"server_name": "a;b"}, "server_name must be host names"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        render(NginxSettings(**changes))


def test_the_command_line_renders_and_refuses_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--server-name", "jamey.internal", "--https-port", "8443", "--workbench-port", "9443"]) == 0
    assert "server_name jamey.internal;" in capsys.readouterr().out
    assert main(["--rate", "fast"]) == 2
    assert "error: rate must look like 10r/s" in capsys.readouterr().err
