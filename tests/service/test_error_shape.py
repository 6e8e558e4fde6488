"""Every error answer has one JSON shape: exactly {"error": <message>, "status": <the HTTP status>}."""

from __future__ import annotations

from typing import Any

import pytest
from service_support import Persona, TestClient, make_persona, test_client

from jamey_engine.engine import Engine
from jamey_engine.errors import Busy
from jamey_engine.service import create_app


def assert_error_shape(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "status"}, body
    assert body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in body["error"]
    return body


def test_missing_key_is_a_401_in_the_error_shape(client: TestClient) -> None:
    body = assert_error_shape(client.get("/memories/sizes"), 401)
    assert "API key required" in body["error"]


def test_unknown_key_is_a_401_in_the_error_shape(client: TestClient) -> None:
    assert_error_shape(client.get("/memories/sizes", headers={"X-API-Key": "jmy_nope"}), 401)


def test_wrong_scope_is_a_403_in_the_error_shape(client: TestClient, reader_key: Persona) -> None:
    body = assert_error_shape(client.get("/admin/keys", headers=reader_key.headers), 403)
    assert "admin" in body["error"]


def test_unknown_route_is_a_404_in_the_error_shape(client: TestClient) -> None:
    assert_error_shape(client.get("/no/such/route"), 404)


def test_wrong_method_is_a_405_in_the_error_shape(client: TestClient) -> None:
    response = client.put("/health")
    assert_error_shape(response, 405)
    assert response.headers["allow"] == "GET"


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/health", "GET"),  # FastAPI's routes serve no HEAD (a 405 too): Allow must not claim it
        ("/memories/search", "GET"),  # a router's prefix
        ("/memories/working/11111111-1111-1111-1111-111111111111", "DELETE, GET"),  # two routes
        ("/admin/retention", "GET"),
        ("/admin/retention/working", "PUT"),
        ("/admin/retention/plan", "GET"),  # the layer segment refuses "plan": no PUT here
        ("/admin/runbooks/runs/runs", "GET, POST"),  # GET /runs/{run_id} and POST /{name}/runs
        ("/openapi.json", "GET, HEAD"),  # a Starlette route serves HEAD with GET
    ],
)
def test_a_405_allows_exactly_the_methods_served_at_its_path(
    client: TestClient, path: str, allow: str
) -> None:
    """Every 405 at the path lists the same methods, and they are the ones that are not a 405."""
    answers = {method: client.request(method, path) for method in METHODS}
    statuses = {method: answer.status_code for method, answer in answers.items()}
    refused = [method for method, status in statuses.items() if status == 405]
    assert refused, statuses
    for method in refused:
        assert answers[method].headers["allow"] == allow, (method, statuses)
    assert ", ".join(sorted(set(METHODS) - set(refused))) == allow, statuses


def test_bad_json_is_a_400_in_the_error_shape(client: TestClient, writer_key: Persona) -> None:
    response = client.post(
        "/memories",
        content=b'{"layer": "working", "content": ',
        headers={**writer_key.headers, "Content-Type": "application/json"},
    )
    body = assert_error_shape(response, 400)
    assert "JSON" in body["error"]


def test_a_validation_error_is_a_422_naming_the_field(client: TestClient, reader_key: Persona) -> None:
    response = client.get(
        "/memories/search", params={"layer": "working", "q": "x", "limit": "0"}, headers=reader_key.headers
    )
    body = assert_error_shape(response, 422)
    assert "limit" in body["error"]


def test_an_oversized_body_is_a_413_in_the_error_shape(client: TestClient, writer_key: Persona) -> None:
    response = client.post("/memories", content=b"x" * (4 * 1024 * 1024 + 1), headers=writer_key.headers)
    body = assert_error_shape(response, 413)
    assert "JAMEY_MAX_BODY_BYTES" in body["error"]


def test_over_the_rate_limit_is_a_429_in_the_error_shape(client: TestClient, service_engine: Engine) -> None:
    persona = make_persona(service_engine, "shape-limited", ("memory:read",), rate_limit="1/minute")
    client.get("/whoami", headers=persona.headers)
    response = client.get("/whoami", headers=persona.headers)
    assert_error_shape(response, 429)
    assert int(response.headers["Retry-After"]) >= 1


def test_a_busy_engine_is_a_503_in_the_error_shape(service_engine: Engine) -> None:
    app = create_app(service_engine)

    @app.get("/test-busy")
    def busy() -> None:
        raise Busy("index writer lock held by another process past 10s")

    with test_client(app) as c:
        body = assert_error_shape(c.get("/test-busy"), 503)
    assert "lock" in body["error"]


def test_an_unexpected_exception_is_a_500_saying_internal_error_only(
    service_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(service_engine)

    @app.get("/test-crash")
    def crash() -> None:
        raise RuntimeError("secret internals that must not reach the client")

    with test_client(app) as c:
        response = c.get("/test-crash")
    body = assert_error_shape(response, 500)
    assert body == {"error": "internal error", "status": 500}
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert any(
        "RuntimeError" in r.getMessage() or r.exc_info for r in caplog.records if r.levelname == "ERROR"
    )
