"""The real `jamey serve` behind the real nginx: what a client gets, headers and error bodies.

The echo upstream in conftest shows what nginx forwards; here the service answers, so the
test sees the headers of both (each exactly once) and the service's own 401, 413 and 429.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port, start_on_free_port

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.nginxconf import NginxSettings

from .conftest import Certificate, Nginx, start_nginx, stop_nginx

pytestmark = pytest.mark.slow

MAX_BODY_BYTES = 4096  # the service's own limit, far under nginx's 4m: the service answers 413


@dataclass(frozen=True)
class Fronted:
    """nginx in front of a real ``jamey serve``, with keys made in the service's database."""

    nginx: Nginx
    writer: str  # memory:read + memory:write, generous limit
    limited: str  # memory:read, 2 requests a minute
    service_log: Path


@pytest.fixture(scope="module")
def fronted(
    tmp_path_factory: pytest.TempPathFactory, certificate: Certificate, upstream: int
) -> Iterator[Fronted]:
    workdir = tmp_path_factory.mktemp("fronted")
    data_dir = workdir / "data"
    data_dir.mkdir()
    env = {
        "JAMEY_DATA_DIR": str(data_dir),
        "JAMEY_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "JAMEY_GLOBAL_RATE_LIMIT": "1000000/minute",
    }
    engine = Engine(Settings.from_env(env))
    try:
        writer = engine.keys.create(
            "nginx-writer", scopes=("memory:read", "memory:write"), rate_limit="10000/minute"
        )
        limited = engine.keys.create("nginx-limited", scopes=("memory:read",), rate_limit="2/minute")
    finally:
        engine.close()
    log_path = workdir / "serve.log"
    full_env = {**os.environ, **env, "JAMEY_LOG_LEVEL": "info"}
    for name in ("API_KEY", "JAMEY_DATABASE_URL", "JAMEY_MQTT_URL", "JAMEY_BACKUP_INTERVAL"):
        full_env.pop(name, None)

    def launch(port: int) -> subprocess.Popen[bytes]:
        with log_path.open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "jamey_engine", "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    service, port = start_on_free_port(launch, timeout=60)
    nginx_process = None
    try:
        settings = NginxSettings(
            server_name="localhost 127.0.0.1",
            listen_address="127.0.0.1",
            http_port=free_port(),
            https_port=free_port(),
            workbench_port=free_port(),
            certificate=str(certificate.cert),
            certificate_key=str(certificate.key),
            service_upstream=f"127.0.0.1:{port}",
            workbench_upstream=f"127.0.0.1:{upstream}",
            # nginx's own limit stays out of the way: these tests are about the service's answers
            # (nginx's limit is tested in test_nginx.py); at 10r/s a fast run hit it first.
            rate="1000r/s",
            burst=100,
        )
        prefix = workdir / "nginx"
        prefix.mkdir()
        nginx_process, settings = start_nginx(prefix, settings)
        yield Fronted(Nginx(settings, certificate, prefix, port), writer.key, limited.key, log_path)
    finally:
        if nginx_process is not None:
            stop_nginx(nginx_process)
        service.terminate()
        service.wait(timeout=30)


def request(
    fronted: Fronted,
    method: str,
    path: str,
    *,
    key: str | None = None,
    body: bytes | None = None,
    source: str = "127.0.0.1",
) -> tuple[http.client.HTTPResponse, bytes]:
    """One request over TLS from ``source`` (a loopback address: 127.0.0.2 is not 127.0.0.1 to nginx)."""
    nginx = fronted.nginx
    connection = http.client.HTTPSConnection(
        "127.0.0.1",
        nginx.https,
        context=nginx.certificate.client_context(),
        timeout=30,
        source_address=(source, 0),
    )
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def header_counts(response: http.client.HTTPResponse) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in response.msg.keys():  # noqa: SIM118 (keys() lists a repeated header each time)
        counts[name.lower()] = counts.get(name.lower(), 0) + 1
    return counts


def assert_headers_once(response: http.client.HTTPResponse) -> None:
    repeated = {name: count for name, count in header_counts(response).items() if count > 1}
    assert repeated == {}, f"headers sent more than once: {repeated}"
    for name in (
        "strict-transport-security",
        "x-frame-options",
        "x-content-type-options",
        "referrer-policy",
        "content-security-policy",
    ):
        assert name in header_counts(response), name


def error_of(body: bytes) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(body)
    assert set(payload) >= {"error", "status"}, payload
    return payload


def test_health_through_nginx_is_the_services_own_answer(fronted: Fronted) -> None:
    response, body = request(fronted, "GET", "/health")
    assert response.status == 200, body
    assert json.loads(body)["status"] == "ok"
    assert response.getheader("Content-Type") == "application/json"
    assert_headers_once(response)


def test_a_stored_memory_comes_back_through_nginx_with_each_header_once(fronted: Fronted) -> None:
    stored, body = request(
        fronted, "POST", "/memories", key=fronted.writer,
        body=json.dumps({"layer": "working", "content": "through the proxy"}).encode(),
    )  # fmt: skip
    assert stored.status == 201, body
    assert_headers_once(stored)
    assert stored.getheader("RateLimit-Limit") is not None  # the service's headers reach the client
    memory_id = json.loads(body)["id"]
    fetched, body = request(fronted, "GET", f"/memories/working/{memory_id}", key=fronted.writer)
    assert fetched.status == 200, body
    assert json.loads(body)["content"] == "through the proxy"
    assert_headers_once(fetched)
    assert "nginx-writer" in fronted.service_log.read_text(errors="replace")


def test_a_missing_key_gets_the_services_401_body_through_nginx(fronted: Fronted) -> None:
    response, body = request(fronted, "GET", "/whoami")
    assert response.status == 401
    payload = error_of(body)
    assert payload["status"] == 401
    assert response.getheader("WWW-Authenticate") == 'Bearer realm="jamey"'
    assert_headers_once(response)


def test_a_body_over_the_services_limit_gets_its_413_body_through_nginx(fronted: Fronted) -> None:
    big = json.dumps({"layer": "working", "content": "x" * (MAX_BODY_BYTES * 2)}).encode()
    response, body = request(fronted, "POST", "/memories", key=fronted.writer, body=big)
    assert response.status == 413
    payload = error_of(body)
    assert f"larger than the {MAX_BODY_BYTES}-byte limit (JAMEY_MAX_BODY_BYTES)" in payload["error"]
    assert_headers_once(response)


def test_a_keys_rate_limit_gets_the_services_429_body_through_nginx(fronted: Fronted) -> None:
    statuses = [request(fronted, "GET", "/whoami", key=fronted.limited)[0].status for _ in range(2)]
    assert statuses == [200, 200]
    response, body = request(fronted, "GET", "/whoami", key=fronted.limited)
    assert response.status == 429
    payload = error_of(body)
    assert payload["status"] == 429
    assert int(response.getheader("Retry-After") or "0") >= 1
    assert response.getheader("RateLimit-Remaining") == "0"
    assert_headers_once(response)


def test_metrics_of_the_real_service_are_served_to_loopback_only_through_nginx(fronted: Fronted) -> None:
    # The documented allow list holds 127.0.0.1 and private networks, not the rest of 127/8: a
    # client at 127.0.0.2 stands for any address outside it (no second host or namespace needed).
    refused, refusal = request(fronted, "GET", "/metrics", source="127.0.0.2")
    assert refused.status == 403
    assert b"http_requests_total" not in refusal and b"nginx" in refusal, "nginx's page, not the service's"
    response, body = request(fronted, "GET", "/metrics")
    assert response.status == 200
    assert b"http_requests_total" in body
    assert b'route="/metrics",status="403"' not in body, "the refused request never reached the service"
    assert_headers_once(response)
