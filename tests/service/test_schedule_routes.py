"""The runbook schedule routes: list, add (with its next five times), pause, resume, remove;
scopes, bad input naming the field, and the documented schema."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from service_support import TestClient, make_persona

from jamey_engine.engine import Engine
from jamey_engine.runbooks import schedules
from jamey_engine.service.auth import SCOPE_FIELD

BASE = "/admin/runbooks/schedules"


def test_an_operator_adds_pauses_resumes_and_removes_a_schedule(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    client, engine = make_client()
    writer = make_persona(engine, "olga-ops", ("ops:write",))
    viewer = make_persona(engine, "victor-viewer", ("ops:read",))

    added = client.post(
        BASE,
        json={
            "runbook": "memory_growth",
            "cron": "0 6 * * 1-5",
            "timezone": "Europe/Paris",
            "parameters": {"days": 7},
        },
        headers=writer.headers,
    )
    assert added.status_code == 201, added.text
    body = added.json()
    assert (body["runbook"], body["cron"], body["timezone"], body["parameters"]) == (
        "memory_growth",
        "0 6 * * 1-5",
        "Europe/Paris",
        {"days": 7},
    )
    assert body["created_by"] == "olga-ops" and body["paused"] is False
    times = [datetime.fromisoformat(at) for at in body["next_run_times"]]
    assert len(times) == 5 and times == sorted(times) and body["next_run_at"] == body["next_run_times"][0]
    assert all(at.weekday() < 5 for at in times)

    listed = client.get(BASE, headers=viewer.headers)
    assert listed.status_code == 200
    assert body["id"] in {row["id"] for row in listed.json()["schedules"]}

    assert client.post(f"{BASE}/{body['id']}/pause", headers=viewer.headers).status_code == 403
    paused = client.post(f"{BASE}/{body['id']}/pause", headers=writer.headers)
    assert (
        paused.status_code == 200 and paused.json()["paused"] is True and paused.json()["next_run_at"] is None
    )
    resumed = client.post(f"{BASE}/{body['id']}/resume", headers=writer.headers)
    assert (
        resumed.status_code == 200
        and resumed.json()["next_run_at"]
        == schedules.get_schedule(engine.db, body["id"]).next_run_at.isoformat()
    )  # type: ignore[union-attr]

    assert client.delete(f"{BASE}/{body['id']}", headers=writer.headers).status_code == 204
    gone = client.delete(f"{BASE}/{body['id']}", headers=writer.headers)
    assert gone.json() == {
        "error": f"runbook schedule {body['id']} does not exist (jamey runbook schedule list)",
        "status": 404,
    }


def test_bad_schedules_are_refused_naming_the_field_and_nothing_is_recorded(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    client, engine = make_client()
    writer = make_persona(engine, "olga-ops", ("ops:write",))
    before = schedules.list_schedules(engine.db)

    def add(**body: object) -> tuple[int, str]:
        answer = client.post(
            BASE, json={"runbook": "memory_growth", "cron": "0 6 * * *", **body}, headers=writer.headers
        )
        return answer.status_code, str(answer.json().get("error"))

    status, error = add(cron="0 25 * * *")
    assert status == 422 and error == (
        "cron (body): '0 25 * * *' is not a cron expression of five fields, minute hour day month "
        "weekday (numbers, *, ranges, lists, /steps; days of the month up to 28)"
    ), error
    assert add(timezone="Moon/Tranquility") == (
        422,
        "timezone (body): 'Moon/Tranquility' is not an IANA time zone (such as UTC or Europe/Paris)",
    )
    status, error = add(parameters={"weeks": 2})
    assert status == 422 and error.startswith(
        "parameters (body): Additional properties are not allowed ('weeks'"
    )
    status, error = add(parameters={"days": "seven"})
    assert status == 422 and error.startswith("parameters.days (body): 'seven' is not of type 'integer'"), (
        error
    )
    status, error = add(runbook="nope")
    assert status == 422 and error.startswith("runbook (body): must name a runbook a schedule may run: ")
    assert "prune_memories" in error and "memory_growth" in error
    status, error = add(runbook="dedupe_memories", parameters={"plan_id": "plan-x"})
    assert status == 422 and error.startswith(
        "parameters (body): Additional properties are not allowed ('plan_id'"
    ), error
    assert add(runbook="memory_growth", cron="0 6 * * *", extra=1)[0] == 422
    bad_json = client.post(BASE, content=b"{", headers={**writer.headers, "Content-Type": "application/json"})
    assert bad_json.status_code == 400
    assert schedules.list_schedules(engine.db) == before
    assert client.post(f"{BASE}/2147483648/pause", headers=writer.headers).status_code == 422


def test_the_documented_body_is_exactly_what_the_route_accepts(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    from jsonschema import Draft202012Validator

    client, engine = make_client()
    writer = make_persona(engine, "olga-ops", ("ops:write",))
    body_schema = client.get("/openapi.json").json()["paths"][BASE]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    validator = Draft202012Validator(body_schema)
    titles = {variant["title"] for variant in body_schema["oneOf"]}
    assert {"memory_growth", "dedupe_memories", "prune_memories", "explore_memories"} <= titles
    good = {"runbook": "prune_memories", "cron": "*/15 0-6 1,15 * 1-5", "timezone": "Europe/Paris",
            "parameters": {"layer": "working", "dry_run": True}}  # fmt: skip
    bad = {**good, "parameters": {"plan_id": "plan-x"}}
    changes = {**good, "parameters": {"dry_run": False}}  # through the plan contract
    assert validator.is_valid(good) and not validator.is_valid(bad) and validator.is_valid(changes)
    assert client.post(BASE, json=good, headers=writer.headers).status_code == 201
    assert client.post(BASE, json=bad, headers=writer.headers).status_code == 422


def test_the_schema_documents_the_schedule_routes_and_their_scopes(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    client, _ = make_client()
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths[BASE]) == {"get", "post"}
    assert set(paths[f"{BASE}/{{schedule_id}}"]) == {"delete"}
    for action in ("pause", "resume"):
        assert set(paths[f"{BASE}/{{schedule_id}}/{action}"]) == {"post"}
    fields = schema["components"]["schemas"]["ScheduleOut"]["properties"]
    assert {
        "id",
        "runbook",
        "cron",
        "timezone",
        "parameters",
        "next_run_at",
        "last_run_id",
        "last_status",
        "paused",
    } <= set(fields)
    assert paths[BASE]["get"][SCOPE_FIELD] == "ops:read"
    assert {paths[BASE]["post"][SCOPE_FIELD], paths[f"{BASE}/{{schedule_id}}"]["delete"][SCOPE_FIELD]} == {
        "ops:write"
    }
