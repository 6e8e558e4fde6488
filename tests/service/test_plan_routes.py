"""Plans over HTTP (SQLite and PostgreSQL): the same plan JSON as the CLI's, approvals by a second
key, apply in the background with its progress on GET, and the existing endpoints through the contract."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

from click.testing import CliRunner
from helpers import wait_until
from service_support import TestClient, make_persona

from jamey_engine.cli import cli
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.oplog import recent_operations

Build = Callable[..., tuple[TestClient, Engine]]


def _old_memories(engine: Engine) -> None:
    now = utcnow()
    engine.memory.store_batch(
        "working", [{"content": f"note {i}", "timestamp": now - timedelta(days=i * 10 + 1)} for i in range(6)]
    )


def _wait_for(client: TestClient, plan_id: str, headers: dict[str, str]) -> dict[str, object]:

    def applied() -> dict[str, object] | None:
        body: dict[str, object] = client.get(f"/admin/plans/{plan_id}", headers=headers).json()
        return body if body["status"] != "applying" else None

    done: dict[str, object] = wait_until(applied, 60, f"plan {plan_id} to finish applying")
    return done


def test_a_plan_made_over_http_is_the_same_json_the_cli_shows_and_applies_in_the_background(
    database_url: str, make_client: Build
) -> None:  # the database outlives the app
    client, engine = make_client(JAMEY_DATABASE_URL=database_url)
    operator = make_persona(engine, "plan-operator", ("ops:write",))
    _old_memories(engine)

    created = client.post(
        "/admin/plans",
        json={"action": "prune", "parameters": {"older_than": "30d"}},
        headers=operator.headers,
    )
    assert created.status_code == 201, created.text
    planned = created.json()
    assert planned["planned_by"] == "plan-operator" and planned["summary"]["total_to_delete"] == 3
    shown = CliRunner().invoke(
        cli,
        [
            "--data-dir",
            str(engine.settings.data_dir),
            "--database-url",
            database_url,
            "plans",
            "show",
            planned["id"],
            "--json",
        ],
    )
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) == planned
    listed = client.get("/admin/plans", params={"status": "planned"}, headers=operator.headers)
    assert [p["id"] for p in listed.json()["plans"]] == [planned["id"]]

    wrong = client.post(
        f"/admin/plans/{planned['id']}/apply", json={"confirm": "yes"}, headers=operator.headers
    )
    assert wrong.status_code == 409 and "type exactly" in wrong.json()["error"]
    started = client.post(
        f"/admin/plans/{planned['id']}/apply",
        json={"confirm": planned["confirm_phrase"]},
        headers=operator.headers,
    )
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "applying"
    done = _wait_for(client, planned["id"], operator.headers)
    assert done["status"] == "applied", done
    assert engine.memory.count("working") == 3
    kinds = [op["kind"] for op in recent_operations(engine.db)][::-1]  # oldest first
    assert kinds[0] == "backup" and set(kinds[1:-1]) == {"prune"} and kinds[-1] == "plan"


def test_approval_over_http_needs_another_key_and_the_revoke_endpoint_stops_naming_the_plan(
    make_client: Build,
) -> None:
    client, engine = make_client(JAMEY_APPROVALS="key-revoke")
    alice = make_persona(engine, "alice", ("admin",))
    bob = make_persona(engine, "bob", ("admin",))
    operator = make_persona(engine, "olga", ("ops:write",))
    victim = make_persona(engine, "victim", ("memory:read",))

    stopped = client.post(f"/admin/keys/{victim.id}/revoke", headers=alice.headers)
    assert stopped.status_code == 409 and "needs approval by a second key" in stopped.json()["error"]
    assert engine.keys.show(victim.id).status == "active"
    plan_id = stopped.json()["error"].split()[1]

    own = client.post(f"/admin/plans/{plan_id}/approve", json={"comment": "mine"}, headers=alice.headers)
    assert own.status_code == 403, own.text
    weak = client.post(f"/admin/plans/{plan_id}/approve", json={"comment": "ok"}, headers=operator.headers)
    assert weak.status_code == 403 and "admin" in weak.json()["error"]
    empty = client.post(f"/admin/plans/{plan_id}/approve", json={"comment": ""}, headers=bob.headers)
    assert empty.status_code == 422
    approved = client.post(
        f"/admin/plans/{plan_id}/approve", json={"comment": "leaked in CI"}, headers=bob.headers
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["approval"] == {
        "status": "approved",
        "by": "bob",
        "at": approved.json()["approval"]["at"],
        "comment": "leaked in CI",
    }
    phrase = approved.json()["confirm_phrase"]
    started = client.post(f"/admin/plans/{plan_id}/apply", json={"confirm": phrase}, headers=alice.headers)
    assert started.status_code == 202, started.text
    assert _wait_for(client, plan_id, alice.headers)["status"] == "applied"
    assert engine.keys.show(victim.id).status == "revoked"
    assert client.get("/metrics").text.count("plans_pending_approval 0.0") == 1


def test_tiered_backup_retention_is_a_backup_delete_plan_over_http(
    database_url: str, make_client: Build
) -> None:
    client, engine = make_client(JAMEY_DATABASE_URL=database_url, JAMEY_BACKUP_KEEP="1")
    admin = make_persona(engine, "retention-admin", ("admin",))
    made = [engine.vault.create().id for _ in range(3)]  # a backup alone applies no retention

    neither = client.post(
        "/admin/plans", json={"action": "backup-delete", "parameters": {}}, headers=admin.headers
    )
    # One backup, or the retention: the schema says so (neither nor both is a valid body).
    assert neither.status_code == 422 and "backup_id" in neither.json()["error"], neither.text
    both = client.post(
        "/admin/plans",
        json={"action": "backup-delete", "parameters": {"backup_id": made[0], "retention": True}},
        headers=admin.headers,
    )
    assert both.status_code == 422, both.text
    created = client.post(
        "/admin/plans",
        json={"action": "backup-delete", "parameters": {"retention": True}},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    planned = created.json()
    assert planned["summary"]["delete_local"] == sorted(made[:2])
    assert planned["summary"]["local"][0]["reasons"] == ["newest", "last 1"]
    started = client.post(
        f"/admin/plans/{planned['id']}/apply",
        json={"confirm": planned["confirm_phrase"]},
        headers=admin.headers,
    )
    assert started.status_code == 202, started.text
    done = _wait_for(client, planned["id"], admin.headers)
    assert done["status"] == "applied", done
    assert [info.id for info in engine.vault.list()] == [made[2]]
