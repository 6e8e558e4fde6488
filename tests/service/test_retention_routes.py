"""Retention over HTTP: reading needs ops:read, setting admin, applying ops:write; the schema
states the layers and the limits' rules, and what it refuses is a one-line 422 that changes
nothing; /metrics shows the runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from jsonschema import Draft202012Validator
from service_support import TestClient, make_persona

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.memory.layers import LAYERS
from jamey_engine.retention.policies import MAX_MAX_BYTES, MIN_MAX_BYTES
from jamey_engine.service.contract import MAX_AGE_PATTERN, MAX_BYTES_PATTERN

Build = Callable[..., tuple[TestClient, Engine]]


def test_policies_are_set_read_planned_and_applied_with_the_right_scopes(make_client: Build) -> None:
    client, engine = make_client()
    admin = make_persona(engine, "ret-admin", ("admin",))
    viewer = make_persona(engine, "ret-viewer", ("ops:read",))
    operator = make_persona(engine, "ret-operator", ("ops:write",))
    now = utcnow()
    engine.memory.store_batch(
        "working",
        [{"content": f"note {i}", "timestamp": now - timedelta(days=i * 10 + 1)} for i in range(6)],
    )

    listed = client.get("/admin/retention", headers=viewer.headers)
    assert listed.status_code == 200, listed.text
    assert {p["layer"]: (p["max_age"], p["max_bytes"]) for p in listed.json()["policies"]}["working"] == (
        None,
        None,
    )
    refused = client.put("/admin/retention/working", json={"max_age": "30d"}, headers=operator.headers)
    assert refused.status_code == 403, refused.text

    put = client.put("/admin/retention/working", json={"max_age": "30d"}, headers=admin.headers)
    assert put.status_code == 200, put.text
    assert put.json()["max_age"] == "30d" and put.json()["set_by"] == "ret-admin"

    plan = client.get("/admin/retention/plan", headers=viewer.headers)
    assert plan.status_code == 200, plan.text
    [layer] = plan.json()["layers"]
    assert (layer["layer"], layer["delete_documents"]) == ("working", 3)
    assert layer["cutoff"] is not None
    assert engine.memory.count("working") == 6

    assert client.post("/admin/retention/apply", headers=viewer.headers).status_code == 403
    applied = client.post("/admin/retention/apply", headers=operator.headers)
    assert applied.status_code == 200, applied.text
    assert applied.json()["deleted"] == 3 and applied.json()["actor"] == "ret-operator"
    assert engine.memory.count("working") == 3

    metrics = client.get("/metrics").text
    assert 'memory_retention_deleted_total{layer="working"} 3.0' in metrics
    assert 'memory_retention_runs_total{status="success"} 1.0' in metrics
    assert "memory_retention_last_success_timestamp_seconds" in metrics
    assert "memory_retention_configured 1.0" in metrics
    assert engine.retention.audit()[0]["actor"] == "ret-admin"


AGE = "max_age (body): expected a duration of at least 1h"
SIZE = "max_bytes (body): expected a size of at least 1MiB"
# Bodies the schema refuses, and what the 422 says. Several are values the engine's own parser
# takes (3600s, 1.5d, 30D, 1048576 as text): over HTTP the pattern is the rule.
REFUSED: list[tuple[str, dict[str, object], str]] = [
    ("nope", {"max_age": "30d"}, "layer (path): Input should be 'short_term', 'long_term', 'working'"),
    ("Working", {"max_age": "30d"}, "layer (path)"),
    ("working", {"max_age": "10m"}, AGE),
    ("working", {"max_age": "59m"}, AGE),
    ("working", {"max_age": "0h"}, AGE),
    ("working", {"max_age": "3600s"}, AGE),
    ("working", {"max_age": "1.5d"}, AGE),
    ("working", {"max_age": "12h1d"}, AGE),
    ("working", {"max_age": "30D"}, AGE),
    ("working", {"max_age": " 30d"}, AGE),
    ("working", {"max_age": "soon"}, AGE),
    ("working", {"max_age": "99999w"}, AGE),
    ("working", {"max_age": 30}, AGE),
    ("working", {"max_bytes": "1KiB"}, SIZE),
    ("working", {"max_bytes": "1MB"}, SIZE),
    ("working", {"max_bytes": "1.5GiB"}, SIZE),
    ("working", {"max_bytes": "1048576"}, SIZE),
    ("working", {"max_bytes": "1000TiB"}, SIZE),
    ("working", {"max_bytes": "lots"}, SIZE),
    ("working", {"max_bytes": 1048575}, SIZE),
    ("working", {"max_bytes": 2**53}, SIZE),
    ("working", {"max_bytes": 1048576.5}, SIZE),
    ("working", {"max_bytes": True}, SIZE),
    ("working", {"max_bytes": [1]}, SIZE),
]
# Bodies the schema allows, at its edges, and the policy each sets (seconds, bytes).
ACCEPTED: list[tuple[dict[str, object], int | None, int | None]] = [
    ({"max_age": "1h"}, 3600, None),
    ({"max_age": "60m"}, 3600, None),
    ({"max_age": "1d12h"}, 36 * 3600, None),
    ({"max_age": "2w0d3h15m"}, 14 * 86400 + 3 * 3600 + 900, None),
    ({"max_age": "9999w999d9999h99999m"}, (9999 * 7 + 999) * 86400 + 9999 * 3600 + 99999 * 60, None),
    ({"max_age": "99999d9999h99999m"}, 99999 * 86400 + 9999 * 3600 + 99999 * 60, None),
    ({"max_bytes": 1048576}, None, 1048576),
    ({"max_bytes": 2097152.0}, None, 2097152),
    ({"max_bytes": 2**53 - 1}, None, 2**53 - 1),
    ({"max_bytes": "2MB"}, None, 2_000_000),
    ({"max_bytes": "1MiB"}, None, 1024**2),
    ({"max_bytes": "999TiB"}, None, 999 * 1024**4),
    ({"max_age": "30d", "max_bytes": "1GiB"}, 30 * 86400, 1024**3),
    ({"max_age": None, "max_bytes": None}, None, None),
]


def test_the_schema_states_the_layers_and_the_limits_rules(make_client: Build) -> None:
    client, _engine = make_client()
    document = client.get("/openapi.json").json()
    put = document["paths"]["/admin/retention/{layer}"]["put"]
    (layer,) = put["parameters"]
    assert layer["in"] == "path" and tuple(layer["schema"]["enum"]) == LAYERS
    body = document["components"]["schemas"]["PolicyBody"]["properties"]
    assert {"type": "string", "pattern": MAX_AGE_PATTERN} in body["max_age"]["anyOf"]
    assert {"type": "null"} in body["max_age"]["anyOf"]
    integer = next(s for s in body["max_bytes"]["anyOf"] if s["type"] == "integer")
    assert (integer["minimum"], integer["maximum"]) == (MIN_MAX_BYTES, MAX_MAX_BYTES)
    assert {"type": "string", "pattern": MAX_BYTES_PATTERN} in body["max_bytes"]["anyOf"]
    assert "At least 1h" in body["max_age"]["description"]
    assert "At least 1MiB" in body["max_bytes"]["description"]


def test_the_schema_and_the_route_agree_on_every_body(make_client: Build) -> None:
    """What the stated schema calls valid is set; what it calls invalid is a one-line 422 that
    names the field and changes nothing."""
    client, engine = make_client()
    admin = make_persona(engine, "ret-admin", ("admin",))
    document = client.get("/openapi.json").json()
    valid = Draft202012Validator(document["components"]["schemas"]["PolicyBody"]).is_valid
    for layer, body, message in REFUSED:
        assert layer not in LAYERS or not valid(body), body
        response = client.put(f"/admin/retention/{layer}", json=body, headers=admin.headers)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert error.startswith(message) and "\n" not in error, (body, error)
    assert engine.retention.audit() == []
    assert all(info.policy.empty for info in engine.retention.show())
    for body, seconds, size in ACCEPTED:
        assert valid(body), body
        response = client.put("/admin/retention/semantic", json=body, headers=admin.headers)
        assert response.status_code == 200, (body, response.text)
        assert (response.json()["max_age_seconds"], response.json()["max_bytes"]) == (seconds, size), body
        policy = engine.retention.get("semantic")
        age = int(policy.max_age.total_seconds()) if policy.max_age else None
        assert (age, policy.max_bytes) == (seconds, size), body


def test_a_layer_path_is_never_the_plan_or_apply_route(make_client: Build) -> None:
    """PUT /admin/retention/plan and /apply are their routes' 405, not a PUT of a layer so named."""
    client, engine = make_client()
    admin = make_persona(engine, "ret-admin", ("admin",))
    for path in ("plan", "apply"):
        response = client.put(f"/admin/retention/{path}", json={"max_age": "30d"}, headers=admin.headers)
        assert response.status_code == 405, response.text
    assert engine.retention.audit() == []


def test_a_put_with_both_limits_null_clears_the_policy(make_client: Build) -> None:
    client, engine = make_client()
    admin = make_persona(engine, "ret-admin", ("admin",))
    engine.retention.set("semantic", max_age="90d", max_bytes="2GiB", actor="test")
    cleared = client.put("/admin/retention/semantic", json={}, headers=admin.headers)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["max_age"] is None and cleared.json()["max_bytes"] is None
    assert engine.retention.get("semantic").policy.empty
