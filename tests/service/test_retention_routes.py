"""Retention over HTTP: reading needs ops:read, setting admin, applying ops:write; bad input is a
one-line 4xx that changes nothing; /metrics shows the runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from service_support import TestClient, make_persona

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine

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


@pytest.mark.parametrize(
    ("layer", "body", "status", "message"),
    [
        ("nope", {"max_age": "30d"}, 400, "layer 'nope' is not one of"),
        ("working", {"max_age": "10m"}, 400, "max_age '10m' is under the minimum of 1h"),
        ("working", {"max_bytes": "1KiB"}, 400, "max_bytes '1KiB' is under the minimum of 1MiB"),
        ("working", {"max_age": "soon"}, 400, "max_age 'soon' is not a duration"),
        ("working", {"max_bytes": "lots"}, 400, "max_bytes 'lots' is not a size"),
        ("working", {"max_bytes": [1]}, 422, "max_bytes"),
    ],
)
def test_bad_policy_input_is_one_line_and_changes_nothing(
    make_client: Build, layer: str, body: dict[str, object], status: int, message: str
) -> None:
    client, engine = make_client()
    admin = make_persona(engine, "ret-admin", ("admin",))
    response = client.put(f"/admin/retention/{layer}", json=body, headers=admin.headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error and "\n" not in error
    assert engine.retention.audit() == []
    assert all(info.policy.empty for info in engine.retention.show())


def test_a_put_with_both_limits_null_clears_the_policy(make_client: Build) -> None:
    client, engine = make_client()
    admin = make_persona(engine, "ret-admin", ("admin",))
    engine.retention.set("semantic", max_age="90d", max_bytes="2GiB", actor="test")
    cleared = client.put("/admin/retention/semantic", json={}, headers=admin.headers)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["max_age"] is None and cleared.json()["max_bytes"] is None
    assert engine.retention.get("semantic").policy.empty
