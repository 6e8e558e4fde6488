"""Key authentication, scopes and rate limits through the real app and real keys."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import REDIS_URL, sleep_until, threads_started_by_this_thread
from service_support import Persona, TestClient, make_persona, sample

from jamey_engine.engine import Engine
from jamey_engine.keys.scopes import has_scope

RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def test_a_bearer_key_is_accepted(client: TestClient, reader_key: Persona) -> None:
    response = client.get("/whoami", headers={"Authorization": f"Bearer {reader_key.key}"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": reader_key.id,
        "name": reader_key.name,
        "scopes": ["memory:read"],
        "rate_limit": "100000/minute",
        "legacy": False,
    }


def test_an_x_api_key_header_is_accepted(client: TestClient, reader_key: Persona) -> None:
    response = client.get("/whoami", headers={"X-API-Key": reader_key.key})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == reader_key.name


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"X-API-Key": "  "}, "missing"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "malformed"),
        ({"Authorization": "Bearer"}, "malformed"),
        ({"X-API-Key": "not-a-jamey-key"}, "malformed"),
        ({"X-API-Key": "jmy_AAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBB_CCCCCC"}, "malformed"),
    ],
)
def test_a_missing_or_malformed_key_gets_401_and_is_counted(
    client: TestClient, headers: dict[str, str], reason: str
) -> None:
    before = sample(client, "api_key_verifications_total", {"result": reason})
    response = client.get("/whoami", headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert sample(client, "api_key_verifications_total", {"result": reason}) == before + 1


def test_an_unknown_well_formed_key_gets_401(client: TestClient, service_engine: Engine) -> None:
    persona = make_persona(service_engine, "frank-deleted-soon", ("memory:read",))
    # Same lookup id, different secret: well formed (checksum recomputed), unknown to the database.
    from jamey_engine.keys import keyformat

    forged = keyformat.build_token(persona.id, "Z" * keyformat.SECRET_LENGTH)
    before = sample(client, "api_key_verifications_total", {"result": "unknown"})
    response = client.get("/whoami", headers={"X-API-Key": forged})
    assert response.status_code == 401
    assert sample(client, "api_key_verifications_total", {"result": "unknown"}) == before + 1


def test_a_revoked_key_gets_401(client: TestClient, revoked_key: Persona) -> None:
    before = sample(client, "api_key_verifications_total", {"result": "revoked"})
    response = client.get("/whoami", headers=revoked_key.headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]
    assert sample(client, "api_key_verifications_total", {"result": "revoked"}) == before + 1


def test_an_expired_key_gets_401(client: TestClient, expired_key: Persona) -> None:
    before = sample(client, "api_key_verifications_total", {"result": "expired"})
    response = client.get("/whoami", headers=expired_key.headers)
    assert response.status_code == 401
    assert "expired" in response.json()["error"]
    assert sample(client, "api_key_verifications_total", {"result": "expired"}) == before + 1


def test_a_good_key_is_counted_as_ok(client: TestClient, reader_key: Persona) -> None:
    before = sample(client, "api_key_verifications_total", {"result": "ok"})
    client.get("/whoami", headers=reader_key.headers)
    assert sample(client, "api_key_verifications_total", {"result": "ok"}) == before + 1


def test_a_reader_cannot_use_admin_routes(client: TestClient, reader_key: Persona) -> None:
    response = client.post("/admin/keys", json={"name": "x", "scopes": ["admin"]}, headers=reader_key.headers)
    assert response.status_code == 403
    assert "'admin'" in response.json()["error"]


def test_a_writer_cannot_search(client: TestClient, writer_key: Persona) -> None:
    response = client.get(
        "/memories/search", params={"layer": "working", "q": "x"}, headers=writer_key.headers
    )
    assert response.status_code == 403
    assert "memory:read" in response.json()["error"]


def test_admin_implies_every_scope() -> None:
    assert has_scope(("admin",), "memory:read")
    assert has_scope(("admin",), "memory:write")
    assert not has_scope(("memory:read",), "memory:write")
    assert has_scope(("memory:read",), None)


def test_going_over_a_keys_limit_gets_429_with_retry_after(
    client: TestClient, service_engine: Engine
) -> None:
    persona = make_persona(service_engine, "grace-limited", ("memory:read",), rate_limit="3/minute")
    before = sample(client, "rate_limited_requests_total", {"scope": "key"})
    remaining = [
        client.get("/whoami", headers=persona.headers).headers["RateLimit-Remaining"] for _ in range(3)
    ]
    assert remaining == ["2", "1", "0"]
    refused = client.get("/whoami", headers=persona.headers)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Limit"] == "3"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert 0 < int(refused.headers["RateLimit-Reset"]) <= 60
    assert "rate limit" in refused.json()["error"]
    assert sample(client, "rate_limited_requests_total", {"scope": "key"}) == before + 1


def test_the_global_limit_refuses_with_scope_global(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    client, engine = make_client(JAMEY_GLOBAL_RATE_LIMIT="2/minute")
    first = make_persona(engine, "first", ("memory:read",))
    second = make_persona(engine, "second", ("memory:read",))
    assert client.get("/whoami", headers=first.headers).status_code == 200
    assert client.get("/whoami", headers=second.headers).status_code == 200
    refused = client.get("/whoami", headers=first.headers)
    assert refused.status_code == 429
    assert "global" in refused.json()["error"]
    assert sample(client, "rate_limited_requests_total", {"scope": "global"}) == 1


def test_rate_limit_headers_are_on_every_answer(
    client: TestClient, reader_key: Persona, revoked_key: Persona
) -> None:
    answers = {
        "ok": client.get("/whoami", headers=reader_key.headers),
        "unauthenticated": client.get("/whoami"),
        "revoked": client.get("/whoami", headers=revoked_key.headers),
        "forbidden": client.get("/admin/keys", headers=reader_key.headers),
        "health": client.get("/health"),
        "metrics": client.get("/metrics"),
        "unmatched": client.get("/nowhere"),
    }
    for what, response in answers.items():
        for header in RATE_HEADERS:
            assert header in response.headers, f"{header} missing on the {what} answer"
            assert int(response.headers[header]) >= 0
    assert answers["ok"].headers["RateLimit-Limit"] == "100000"
    assert answers["forbidden"].headers["RateLimit-Limit"] == "100000"  # charged before the scope check


def test_health_and_metrics_need_no_key_and_are_never_limited(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    client, _ = make_client(JAMEY_GLOBAL_RATE_LIMIT="1/minute")
    for _ in range(5):
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_the_legacy_api_key_still_works_and_is_marked_deprecated(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    client, _ = make_client(API_KEY="legacy-secret-value-1234")
    response = client.get("/whoami", headers={"X-API-Key": "legacy-secret-value-1234"})
    assert response.status_code == 200, response.text
    assert response.json()["legacy"] is True
    assert response.headers["Deprecation"] == "true"


def test_every_route_but_health_metrics_and_docs_requires_a_key(service_app: object) -> None:
    from fastapi.routing import APIRoute

    from jamey_engine.service.auth import KeyedRoute

    public = {"/health", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    for route in service_app.routes:  # type: ignore[attr-defined]
        if isinstance(route, APIRoute) and route.path not in public:
            assert isinstance(route, KeyedRoute), f"{route.path} is not keyed"


def test_the_key_is_checked_before_the_body_is_parsed(client: TestClient) -> None:
    response = client.post("/memories", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 401


def test_the_openapi_document_declares_both_key_headers(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"bearerKey", "headerKey"}
    assert schema["paths"]["/memories"]["post"]["x-jamey-scope"] == "memory:write"
    assert "security" not in schema["paths"]["/health"]["get"]


def test_the_in_memory_limiter_starts_no_thread_while_counting(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    _, engine = make_client()
    engine.limiter.hit("warm-up", "100/second")
    with threads_started_by_this_thread() as started:
        for _ in range(20):  # spaced past the stock 10 ms expiry timer, which would restart each time
            engine.limiter.hit("spaced", "1000/second")
            time.sleep(0.015)
    assert started == []


@pytest.mark.redis
def test_two_service_processes_share_a_keys_limit_through_redis(
    make_client: Callable[..., tuple[TestClient, Engine]], tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    first, engine = make_client(JAMEY_RATE_LIMIT_STORAGE=REDIS_URL, JAMEY_DATABASE_URL=database)
    second, _ = make_client(JAMEY_RATE_LIMIT_STORAGE=REDIS_URL, JAMEY_DATABASE_URL=database)
    persona = make_persona(
        engine, f"shared-{os.getpid()}-{time.time_ns()}", ("memory:read",), rate_limit="3/minute"
    )
    statuses = [c.get("/whoami", headers=persona.headers).status_code for c in (first, second, first, second)]
    assert statuses == [200, 200, 200, 429]
    assert second.get("/whoami", headers=persona.headers).headers["RateLimit-Remaining"] == "0"


def test_verify_cached_answers_only_from_the_cache(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    from jamey_engine.errors import KeyRejected
    from jamey_engine.keys import keyformat

    _, engine = make_client(JAMEY_KEY_CACHE_SECONDS="600")  # nothing goes stale during the test
    persona = make_persona(engine, "cached", ("memory:read",))
    assert engine.keys.verify_cached(persona.key) is None  # never verified: the database must answer
    assert engine.keys.verify(persona.key).id == persona.id
    assert engine.keys.verify_cached(persona.key).id == persona.id  # type: ignore[union-attr]
    stranger = keyformat.new_token()[0]  # well formed, an id never seen: the database must answer
    assert engine.keys.verify_cached(stranger) is None
    with pytest.raises(KeyRejected):
        engine.keys.verify(stranger)
    with pytest.raises(KeyRejected):
        engine.keys.verify_cached(stranger)  # a cached rejection is a rejection
    # A wrong secret for an id whose row was just read is refused from that row's hash, on the
    # event loop too: guessing secrets for a known (public) id costs no query.
    bogus = keyformat.build_token(persona.id, "Z" * keyformat.SECRET_LENGTH)
    with pytest.raises(KeyRejected):
        engine.keys.verify_cached(bogus)


def test_verify_cached_goes_back_to_the_database_once_the_cache_period_is_over(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    _, engine = make_client(JAMEY_KEY_CACHE_SECONDS="0.3")
    persona = make_persona(engine, "stale", ("memory:read",))
    assert engine.keys.verify(persona.key).id == persona.id
    answered = time.monotonic()  # the database was asked before this
    sleep_until(answered + 0.3)
    assert engine.keys.verify_cached(persona.key) is None  # stale: back to the database


def test_last_used_times_reach_the_database_while_the_app_runs(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    import sqlalchemy as sa

    client, engine = make_client()
    persona = make_persona(engine, "used", ("memory:read",))
    for _ in range(3):  # the first through the database, the rest from the cache on the event loop
        assert client.get("/whoami", headers=persona.headers).status_code == 200
    query = sa.text("SELECT last_used_at FROM api_keys WHERE id = :id")
    deadline = time.monotonic() + 6
    stored = None
    while stored is None and time.monotonic() < deadline:
        time.sleep(0.2)
        with engine.db.engine.connect() as conn:
            stored = conn.execute(query, {"id": persona.id}).scalar_one()
    assert stored is not None
