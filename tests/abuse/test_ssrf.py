"""No caller chooses where the service sends a request, nor sees more than a line of a foreign
answer: a run that names ``prometheus_url`` (or ``data_dir``) is refused; the Prometheus and
Alertmanager clients never follow a redirect; their errors carry a short excerpt of the answer
and no URL credentials."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import free_port
from service.service_support import TestClient, make_persona

from jamey_engine.engine import Engine
from jamey_engine.errors import JameyError
from jamey_engine.observability.alertmanager import AlertmanagerClient
from jamey_engine.observability.promql import PromQuery
from jamey_engine.runbooks import GrowthReport

SECRET = "hunter2-not-for-you"
LEAKY_BODY = f"upstream said: see http://admin:{SECRET}@10.0.0.5:8500/v1/agent/self " + "x" * 20_000


@contextmanager
def http_server(
    answer: Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], str]],
) -> Iterator[tuple[str, list[str]]]:
    """A loopback server answering every request with ``answer(handler)``; yields (url, paths hit)."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            hits.append(self.path)
            status, headers, body = answer(self)
            data = body.encode()
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def test_a_run_naming_a_url_or_a_data_dir_is_refused(
    make_client: Callable[..., tuple[TestClient, Engine]], tmp_path: Path
) -> None:
    client, engine = make_client()
    operator = make_persona(engine, "olga-ops", ("ops:write",))
    with http_server(lambda _: (200, {}, '{"Config": {"secret": "agent"}}')) as (internal, hits):
        for name, value in (("prometheus_url", f"{internal}/v1/agent/self#"), ("data_dir", str(tmp_path))):
            refused = client.post(
                "/admin/runbooks/memory_growth/runs",
                json={"parameters": {name: value}},
                headers=operator.headers,
            )
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"].startswith(f"parameter {name} is not set by a run"), refused.text
        assert hits == []
    listed = client.get("/admin/runbooks/runs", headers=operator.headers)
    assert listed.status_code == 200 and listed.json()["runs"] == []
    catalog = client.get("/admin/runbooks", headers=operator.headers).json()["runbooks"]
    growth = next(item for item in catalog if item["name"] == "memory_growth")
    assert [p["name"] for p in growth["parameters"]] == ["days"]


def _redirect(_: BaseHTTPRequestHandler, to: str) -> tuple[int, dict[str, str], str]:
    return 302, {"Location": to}, ""


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_the_clients_never_follow_a_redirect(status: int) -> None:
    with http_server(lambda _: (200, {}, '{"status": "success", "data": []}')) as (internal, hits):
        to = f"{internal}/v1/agent/self"
        with http_server(lambda _: (status, {"Location": to}, "moved")) as (redirector, _):
            with PromQuery(redirector, timeout=5) as prom, pytest.raises(JameyError, match=f"HTTP {status}"):
                prom.ping()
            with (
                AlertmanagerClient(redirector, timeout=5) as am,
                pytest.raises(JameyError, match=f"HTTP {status}"),
            ):
                am.silences()
    assert hits == []


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_errors_carry_a_short_excerpt_and_no_credentials(status: int) -> None:
    with http_server(lambda _: (status, {"Content-Type": "text/plain"}, LEAKY_BODY)) as (url, _):
        credentialed = url.replace("http://", f"http://jamey:{SECRET}@")
        with PromQuery(credentialed, timeout=5) as prom, pytest.raises(JameyError) as prom_error:
            prom.ping()
        with AlertmanagerClient(credentialed, timeout=5) as am, pytest.raises(JameyError) as am_error:
            am.silences()
    for error in (prom_error.value, am_error.value):
        assert SECRET not in error.message and len(error.message) < 500, error.message
        assert "upstream said" in error.message and "***@" in error.message
    down = f"http://jamey:{SECRET}@127.0.0.1:{free_port()}"
    with PromQuery(down, timeout=2) as prom, pytest.raises(JameyError) as unreachable:
        prom.ping()
    assert SECRET not in unreachable.value.message and "127.0.0.1" in unreachable.value.message


def test_the_growth_report_never_prints_prometheus_credentials(data_dir: Path) -> None:
    lines: list[str] = []
    down = f"http://jamey:{SECRET}@127.0.0.1:{free_port()}"
    report = GrowthReport.open(data_dir=data_dir, days=7, prometheus_url=down, say=lines.append)
    report.index_history()
    report.prometheus_history()
    report.close()
    assert any("no Prometheus history" in line for line in lines), lines
    assert not any(SECRET in line for line in lines), lines
