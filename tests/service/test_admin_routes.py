"""Admin routes: keys are created, listed, rotated and revoked over HTTP, audited with the caller's name."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from service_support import Persona, TestClient, make_persona

from jamey_engine.engine import Engine


def create(client: TestClient, admin: Persona, **body: object) -> dict[str, object]:
    response = client.post("/admin/keys", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_an_admin_creates_a_key_and_sees_its_plaintext_once(client: TestClient, admin_key: Persona) -> None:
    created = create(
        client, admin_key, name="henry-app", scopes=["memory:read", "memory:write"], rate_limit="120/minute"
    )
    assert str(created["key"]).startswith("jmy_")
    assert created["scopes"] == ["memory:read", "memory:write"]
    assert created["rate_limit"] == "120/minute"
    assert created["status"] == "active"
    usable = client.get("/whoami", headers={"X-API-Key": str(created["key"])})
    assert usable.status_code == 200
    listed = client.get("/admin/keys", headers=admin_key.headers)
    assert listed.status_code == 200
    assert str(created["key"]) not in listed.text
    assert created["id"] in [k["id"] for k in listed.json()["keys"]]


def test_a_key_with_an_expiry_reports_it(client: TestClient, admin_key: Persona) -> None:
    created = create(client, admin_key, name="ivy-temp", scopes=["memory:read"], expires_in="2d")
    assert created["expires_at"] is not None
    assert created["status"] == "expiring"


def test_bad_admin_input_names_the_field(client: TestClient, admin_key: Persona) -> None:
    cases = [
        ({"name": "", "scopes": ["memory:read"]}, 422, "name"),
        ({"name": "x", "scopes": ["root"]}, 422, "scopes"),
        ({"name": "x", "scopes": []}, 422, "scopes"),
        ({"name": "x", "rate_limit": "lots"}, 422, "rate_limit"),
        ({"name": "x", "rate_limit": ""}, 422, "rate_limit"),
        ({"name": "x", "expires_in": "soon"}, 422, "expires_in"),
        ({"name": "x", "expires_in": "0s"}, 422, "expires_in"),
    ]
    for body, status, field in cases:
        response = client.post("/admin/keys", json=body, headers=admin_key.headers)
        assert response.status_code == status, (body, response.text)
        assert field in response.json()["error"], (body, response.text)


def test_a_duplicate_active_name_is_a_conflict(client: TestClient, admin_key: Persona) -> None:
    create(client, admin_key, name="jack-dup")
    response = client.post("/admin/keys", json={"name": "jack-dup"}, headers=admin_key.headers)
    assert response.status_code == 409


def test_rotation_issues_a_new_key_and_stops_the_old_one(client: TestClient, admin_key: Persona) -> None:
    old = create(client, admin_key, name="kate-rotate")
    response = client.post(f"/admin/keys/{old['id']}/rotate", headers=admin_key.headers)
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["key"] != old["key"] and new["name"] == "kate-rotate"
    assert client.get("/whoami", headers={"X-API-Key": new["key"]}).status_code == 200
    assert client.get("/whoami", headers={"X-API-Key": str(old["key"])}).status_code == 401


def test_rotation_with_grace_keeps_the_old_key_working(client: TestClient, admin_key: Persona) -> None:
    old = create(client, admin_key, name="liam-grace")
    response = client.post(f"/admin/keys/{old['id']}/rotate", json={"grace": "1h"}, headers=admin_key.headers)
    assert response.status_code == 201, response.text
    assert client.get("/whoami", headers={"X-API-Key": str(old["key"])}).status_code == 200
    shown = client.get(f"/admin/keys/{old['id']}", headers=admin_key.headers).json()
    assert shown["status"] == "rotating"
    bad = client.post(
        f"/admin/keys/{response.json()['id']}/rotate", json={"grace": "forever"}, headers=admin_key.headers
    )
    assert bad.status_code == 422 and "grace" in bad.json()["error"]


def test_revocation_over_http_takes_effect_at_once_in_this_process(
    client: TestClient, admin_key: Persona
) -> None:
    created = create(client, admin_key, name="mia-revoke")
    headers = {"X-API-Key": str(created["key"])}
    assert client.get("/whoami", headers=headers).status_code == 200
    response = client.post(f"/admin/keys/{created['id']}/revoke", headers=admin_key.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "revoked"
    assert client.get("/whoami", headers=headers).status_code == 401
    again = client.post(f"/admin/keys/{created['id']}/revoke", headers=admin_key.headers)
    assert again.status_code == 409


def test_unknown_key_ids_are_404(client: TestClient, admin_key: Persona) -> None:
    for method, path in (("get", "/admin/keys/nosuchkey"), ("post", "/admin/keys/nosuchkey/revoke")):
        response = client.request(method, path, headers=admin_key.headers)
        assert response.status_code == 404, response.text
        assert "nosuchkey" in response.json()["error"]


def test_the_audit_trail_names_the_calling_key_as_actor(
    client: TestClient, admin_key: Persona, service_engine: Engine
) -> None:
    created = create(client, admin_key, name="noah-audited")
    client.post(f"/admin/keys/{created['id']}/revoke", headers=admin_key.headers)
    events = [e for e in service_engine.keys.audit(limit=50) if e["key_id"] == created["id"]]
    assert {e["event"] for e in events} == {"created", "revoked"}
    assert {e["actor"] for e in events} == {admin_key.name}
    over_http = client.get("/admin/audit", params={"limit": 50}, headers=admin_key.headers)
    assert over_http.status_code == 200
    assert any(
        e["key_id"] == created["id"] and e["actor"] == admin_key.name for e in over_http.json()["events"]
    )


def test_admin_answers_are_never_cached(client: TestClient, admin_key: Persona, reader_key: Persona) -> None:
    created = client.post("/admin/keys", json={"name": f"olivia-{time.time_ns()}"}, headers=admin_key.headers)
    for response in (
        created,
        client.get("/admin/keys", headers=admin_key.headers),
        client.get("/admin/keys", headers=reader_key.headers),
        client.get("/admin/keys"),
    ):
        assert response.headers["Cache-Control"] == "no-store", response.status_code


@pytest.mark.postgres
def test_the_whole_key_flow_works_on_postgresql(
    make_client: Callable[..., tuple[TestClient, Engine]], postgres_url: str
) -> None:
    client, engine = make_client(JAMEY_DATABASE_URL=postgres_url)
    assert client.get("/health").json()["database"]["ok"] is True
    admin = make_persona(engine, "pg-admin", ("admin",))
    created = create(client, admin, name="pg-user", scopes=["memory:read", "memory:write"])
    headers = {"X-API-Key": str(created["key"])}
    stored = client.post("/memories", json={"layer": "working", "content": "on postgres"}, headers=headers)
    assert stored.status_code == 201, stored.text
    assert client.post(f"/admin/keys/{created['id']}/revoke", headers=admin.headers).status_code == 200
    assert client.get("/whoami", headers=headers).status_code == 401
    assert [e["actor"] for e in engine.keys.audit(key_id=str(created["id"]))] == ["pg-admin", "pg-admin"]
    assert "backup_operations_total" in client.get("/metrics").text


@pytest.mark.parametrize("scope", ["ops:read", "ops:write", "alerts:write", "memory:write"])
def test_only_an_admin_key_manages_keys_over_http(
    client: TestClient, service_engine: Engine, scope: str
) -> None:
    person = make_persona(service_engine, f"{scope.replace(':', '-')}-person", (scope,))
    listed = client.get("/admin/keys", headers=person.headers)
    assert listed.status_code == 403
    assert (
        listed.json()
        == {
            "error": listed.json()["error"],
            "status": 403,
        }
        and "lacks the scope 'admin'" in listed.json()["error"]
    )
    made = client.post("/admin/keys", json={"name": "sneaky", "scopes": ["admin"]}, headers=person.headers)
    assert made.status_code == 403
    assert "sneaky" not in [k.name for k in service_engine.keys.list()]


def test_the_new_scopes_can_be_given_over_http(client: TestClient, admin_key: Persona) -> None:
    created = create(client, admin_key, name="viewer", scopes=["ops:read", "ops:write"])
    assert created["scopes"] == ["ops:read", "ops:write"]
    schema = client.get("/openapi.json").json()
    field = schema["components"]["schemas"]["CreateKeyBody"]["properties"]["scopes"]
    assert field["items"]["enum"] == [
        "memory:read",
        "memory:write",
        "alerts:write",
        "ops:read",
        "ops:write",
        "admin",
    ]
    assert all(f"{scope}: " in field["description"] for scope in field["items"]["enum"])
