"""Security headers on every answer; no key or secret in any log line; the access log names the key."""

from __future__ import annotations

import logging

import pytest
from service_support import Persona, TestClient

SECURITY = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def test_every_answer_carries_the_security_headers(
    client: TestClient, reader_key: Persona, admin_key: Persona
) -> None:
    answers = [
        client.get("/health"),
        client.get("/metrics"),
        client.get("/whoami", headers=reader_key.headers),
        client.get("/whoami"),
        client.get("/admin/keys", headers=admin_key.headers),
        client.get("/admin/keys", headers=reader_key.headers),
        client.get("/nowhere"),
        client.post(
            "/memories", content=b"{", headers={**reader_key.headers, "Content-Type": "application/json"}
        ),
        client.get("/docs"),
        client.get("/openapi.json"),
    ]
    for response in answers:
        for name, value in SECURITY.items():
            assert response.headers.get(name) == value, (response.request.url, name)


def test_no_log_line_contains_a_key_or_its_secret(
    client: TestClient,
    admin_key: Persona,
    reader_key: Persona,
    revoked_key: Persona,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    created = client.post("/admin/keys", json={"name": "paul-logged"}, headers=admin_key.headers).json()
    new_key = created["key"]
    client.get("/whoami", headers={"X-API-Key": new_key})
    client.get("/whoami", headers=reader_key.headers)
    client.get("/whoami", headers={"Authorization": f"Bearer {revoked_key.key}"})
    client.get("/admin/keys", headers=reader_key.headers)
    client.post(f"/admin/keys/{created['id']}/rotate", headers=admin_key.headers)
    client.get("/whoami", headers={"X-API-Key": new_key})  # now rejected
    client.get("/whoami", headers={"X-API-Key": "jmy_garbage_that_is_not_a_key"})
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert text, "expected some log lines"
    secrets = [admin_key, reader_key, revoked_key]
    for persona in secrets:
        assert persona.key not in text
        assert persona.secret not in text
    assert new_key not in text
    assert new_key.split("_")[2] not in text
    assert "jmy_garbage_that_is_not_a_key" not in text


def test_the_access_log_names_the_key_and_route_but_not_the_query(
    client: TestClient, reader_key: Persona, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jamey_engine.service.access")
    client.get("/whoami?token=should-not-be-logged", headers=reader_key.headers)
    lines = [r.getMessage() for r in caplog.records if r.name == "jamey_engine.service.access"]
    assert any('"GET /whoami" 200' in line and f"key={reader_key.name}" in line for line in lines), lines
    assert not any("should-not-be-logged" in line for line in lines)
