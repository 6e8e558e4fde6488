"""POST /alertmanager/webhook: the key and scope it needs, the payload's schema as the OpenAPI
document states it and the handler enforces it, malformed payloads refused with nothing stored,
idempotent storage, the metric; and end to end, a real Alertmanager delivering
to a real `jamey serve` with the credentials file."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from amserver import alert, resolved, start_alertmanager
from helpers import wait_until
from jsonschema import Draft202012Validator
from service_support import Persona, RunningServer, TestClient, count_rows, make_persona, sample

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.observability.alert_history import (
    ENDS_PATTERN,
    MAX_ALERTS,
    MOMENT_PATTERN,
    WEBHOOK_SCHEMA,
    history_frame,
    intervals,
    resolve_stats,
)

URL = "/alertmanager/webhook"


def payload(*alerts: dict[str, Any], version: str = "4") -> dict[str, Any]:
    return {
        "version": version,
        "groupKey": '{}:{alertname="JameyBackupFailed"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "warning",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": list(alerts),
    }


# Three hours before the clock the history's windows use (a fixed date falls out of "the last
# day" a day later); taken once, so every notification of an alert names the same instance.
STARTED = utcnow().replace(microsecond=0) - timedelta(hours=3)


def notification(fingerprint: str, status: str = "firing", **labels: str) -> dict[str, Any]:
    """A notification that started at STARTED, resolved 30 minutes after it started."""
    started = STARTED
    ended = started + timedelta(minutes=30)
    return {
        "status": status,
        "labels": {"alertname": "JameyBackupFailed", "severity": "critical", **labels},
        "annotations": {"summary": "a backup failed"},
        "startsAt": started.strftime("%Y-%m-%dT%H:%M:%S") + ".123456789Z",
        "endsAt": ended.strftime("%Y-%m-%dT%H:%M:%SZ") if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }


@pytest.fixture
def hook_client(make_client: Callable[..., tuple[TestClient, Engine]]) -> tuple[TestClient, Engine, Persona]:
    # These tests are about storage; tests/service/test_auto_diagnosis.py starts diagnoses.
    client, engine = make_client(JAMEY_AUTO_DIAGNOSE="0")
    return client, engine, make_persona(engine, "alertmanager-webhook", ("alerts:write",))


def test_it_refuses_no_key_and_another_scope_and_stores_nothing(
    hook_client: tuple[TestClient, Engine, Persona],
) -> None:
    client, engine, _hook = hook_client
    reader = make_persona(engine, "bob-reader", ("memory:read", "ops:write"))
    body = payload(notification("aaaa"))
    missing = client.post(URL, json=body)
    assert missing.status_code == 401 and missing.json()["status"] == 401
    wrong = client.post(URL, json=body, headers=reader.headers)
    assert wrong.status_code == 403
    assert "alerts:write" in wrong.json()["error"]
    assert count_rows(engine, "alert_notifications") == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body: not valid JSON"),
        (json.dumps(payload(notification("a"), version="3")).encode(), "version: expected"),
        (json.dumps({"version": "4", "alerts": "nope"}).encode(), "alerts: expected a list"),
        (
            json.dumps(payload(notification("a"), {**notification("b"), "status": "odd"})).encode(),
            "alerts[1].status",
        ),
        (json.dumps(payload({**notification("a"), "startsAt": "yesterday"})).encode(), "alerts[0].startsAt"),
        (json.dumps(payload({**notification("a"), "fingerprint": ""})).encode(), "alerts[0].fingerprint"),
        (json.dumps(payload({**notification("a"), "labels": {"severity": "x"}})).encode(), "alertname"),
    ],
)
def test_a_malformed_payload_gets_400_and_nothing_is_stored(
    hook_client: tuple[TestClient, Engine, Persona], body: bytes, message: str
) -> None:
    client, engine, hook = hook_client
    answer = client.post(URL, content=body, headers={**hook.headers, "Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"error": answer.json()["error"], "status": 400}
    assert message in answer.json()["error"]
    assert "\n" not in answer.json()["error"]
    assert count_rows(engine, "alert_notifications") == 0


def test_the_schema_states_alertmanagers_payload(hook_client: tuple[TestClient, Engine, Persona]) -> None:
    client, _engine, _hook = hook_client
    body = client.get("/openapi.json").json()["paths"][URL]["post"]["requestBody"]
    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    assert schema == json.loads(json.dumps(WEBHOOK_SCHEMA))
    assert schema["required"] == ["version", "alerts"]
    assert schema["properties"]["version"]["enum"] == ["4"]
    assert schema["properties"]["alerts"]["maxItems"] == MAX_ALERTS
    alert = schema["properties"]["alerts"]["items"]
    assert sorted(alert["required"]) == ["fingerprint", "labels", "startsAt", "status"]
    fields = alert["properties"]
    assert fields["status"]["enum"] == ["firing", "resolved"]
    assert fields["labels"]["required"] == ["alertname"]
    assert fields["labels"]["additionalProperties"] == {"type": "string", "maxLength": 1024}
    assert (fields["labels"]["maxProperties"], fields["annotations"]["maxProperties"]) == (64, 64)
    assert (fields["startsAt"]["format"], fields["startsAt"]["pattern"]) == ("date-time", MOMENT_PATTERN)
    assert (fields["endsAt"]["format"], fields["endsAt"]["pattern"]) == ("date-time", ENDS_PATTERN)
    assert (fields["fingerprint"]["minLength"], fields["fingerprint"]["maxLength"]) == (1, 64)


# Three hours before the clock the history keeps its days by: an older alert is never stored.
STARTED = utcnow().replace(microsecond=0) - timedelta(hours=3)
MINIMAL = {
    "status": "firing",
    "labels": {"alertname": "A"},
    "startsAt": STARTED.strftime("%Y-%m-%dT%H:%M:%SZ"),
    "fingerprint": "f",
}


def one(**alert: Any) -> dict[str, Any]:
    """A payload of one alert: the minimal one with ``alert``'s fields (None: left out)."""
    fields = {k: v for k, v in {**MINIMAL, **alert}.items() if v is not None}
    return {"version": "4", "alerts": [fields]}


# Payloads and the field a 400 names (None: accepted). Each is checked against the stated schema.
CASES: list[tuple[Any, str | None]] = [
    ({"version": "4", "alerts": []}, None),
    (one(), None),
    (payload(notification("a"), notification("b", "resolved")), None),
    ({**one(extra=[1]), "groupKey": "{}", "truncatedAlerts": 2.0, "also": None}, None),
    (one(startsAt="2026-01-31t12:00:00.123456789z"), None),
    (one(startsAt="1970-01-01T00:00:00+01:00"), None),
    (one(startsAt="2261-12-31T23:59:59-23:59"), None),
    (one(status="resolved", endsAt="2026-02-01T00:00:00Z"), None),
    (one(endsAt="0001-01-01T00:00:00Z"), None),
    (one(fingerprint="x" * 64), None),
    (one(labels={"alertname": " ", "": "empty name"}, annotations={}), None),
    ([one()], "body"),
    ({"version": 4, "alerts": []}, "version"),
    ({"alerts": []}, "version"),
    ({"version": "4"}, "alerts"),
    ({**one(), "truncatedAlerts": -1}, "truncatedAlerts"),
    ({**one(), "truncatedAlerts": 1.5}, "truncatedAlerts"),
    ({**one(), "truncatedAlerts": True}, "truncatedAlerts"),
    ({**one(), "receiver": 5}, "receiver"),
    ({**one(), "status": "odd"}, "status"),
    ({**one(), "commonLabels": {"a": 1}}, "commonLabels.a"),
    ({**one(), "commonAnnotations": None}, "commonAnnotations"),
    ({"version": "4", "alerts": [1]}, "alerts[0]"),
    (one(labels={"alertname": "A", "n": 1}), "alerts[0].labels.n"),
    (one(labels={"alertname": "A", "a\nb": 1}), "alerts[0].labels['a\\nb']"),
    (one(labels={"alertname": ""}), "alerts[0].labels: the alertname label is missing"),
    ({"version": "4", "alerts": [{k: v for k, v in MINIMAL.items() if k != "labels"}]}, "alerts[0].labels"),
    (one(annotations=[]), "alerts[0].annotations"),
    (one(endsAt=""), "alerts[0].endsAt"),
    (one(startsAt="2026-01-31 12:00:00Z"), "alerts[0].startsAt"),
    (one(startsAt="2026-01-31T12:00:00"), "alerts[0].startsAt"),
    (one(startsAt="2026-01-31T12:00Z"), "alerts[0].startsAt"),
    (one(startsAt="2026-02-30T00:00:00Z"), "alerts[0].startsAt"),
    (one(startsAt="2026-01-31T23:59:60Z"), "alerts[0].startsAt"),
    (one(startsAt="2262-01-01T00:00:00Z"), "alerts[0].startsAt"),
    (one(startsAt="1969-12-31T23:59:59Z"), "alerts[0].startsAt"),
    (one(startsAt="0001-01-01T00:00:00Z"), "alerts[0].startsAt"),
    (one(startsAt=1_800_000_000), "alerts[0].startsAt"),
    (one(fingerprint="x" * 65), "alerts[0].fingerprint"),
    (one(generatorURL=1), "alerts[0].generatorURL"),
    (one(status="pending"), "alerts[0].status"),
]


def test_the_schema_and_the_handler_agree_on_every_payload(
    hook_client: tuple[TestClient, Engine, Persona],
) -> None:
    """What the stated schema calls valid is stored; what it calls invalid is a one-line 400
    naming the field, with nothing stored."""
    client, engine, hook = hook_client
    schema = client.get("/openapi.json").json()["paths"][URL]["post"]["requestBody"]["content"]
    validator = Draft202012Validator(
        schema["application/json"]["schema"], format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    assert "date-time" in validator.format_checker.checkers  # else formats pass unchecked
    stored = 0
    for body, where in CASES:
        assert validator.is_valid(body) == (where is None), (body, where)
        answer = client.post(URL, json=body, headers=hook.headers)
        if where is None:
            assert answer.status_code == 200, (body, answer.text)
            stored = count_rows(engine, "alert_notifications")
        else:
            assert answer.status_code == 400, (body, answer.text)
            error = answer.json()["error"]
            assert error.startswith(where) and "\n" not in error, (body, error)
            assert count_rows(engine, "alert_notifications") == stored


def test_a_minimal_payload_is_stored(hook_client: tuple[TestClient, Engine, Persona]) -> None:
    client, engine, hook = hook_client
    answer = client.post(URL, json=one(), headers=hook.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"alerts": 1}
    row = history_frame(engine.db, since=history_since()).iloc[0]
    assert (row["alertname"], row["status"], row["fingerprint"]) == ("A", "firing", "f")
    assert row["starts_at"] == STARTED
    assert row["severity"] == "" and row["receiver"] == ""


def test_text_is_stored_whatever_its_characters_but_lone_surrogates_are_refused(
    hook_client: tuple[TestClient, Engine, Persona],
) -> None:
    """NUL, which PostgreSQL's text cannot hold, is U+FFFD in the columns (the labels keep it as
    JSON); a lone surrogate is not Unicode text, which no schema can state: 400, nothing stored."""
    client, engine, hook = hook_client
    odd = one(fingerprint="f\x00", labels={"alertname": "A\x00B"})
    assert client.post(URL, json=odd, headers=hook.headers).status_code == 200
    row = history_frame(engine.db, since=history_since()).iloc[0]
    assert (row["alertname"], row["fingerprint"]) == ("A\ufffdB", "f\ufffd")
    raw = json.dumps(one(fingerprint="g", labels={"alertname": "\ud800"}))
    answer = client.post(URL, content=raw, headers={**hook.headers, "Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith("alerts[0].labels.alertname: not valid Unicode text")
    assert count_rows(engine, "alert_notifications") == 1


def test_notifications_are_stored_once_and_counted(hook_client: tuple[TestClient, Engine, Persona]) -> None:
    client, engine, hook = hook_client
    firing = payload(notification("f1", layer="semantic"), notification("f2"))
    for _attempt in range(3):  # Alertmanager's repeats and retries
        answer = client.post(URL, json=firing, headers=hook.headers)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"alerts": 2}
    assert count_rows(engine, "alert_notifications") == 2
    client.post(URL, json=payload(notification("f1", "resolved", layer="semantic")), headers=hook.headers)
    client.post(URL, json=payload(notification("f1", "resolved", layer="semantic")), headers=hook.headers)
    assert count_rows(engine, "alert_notifications") == 3
    metrics = client.get("/metrics").text
    assert 'alert_notifications_received_total{status="firing"} 2.0' in metrics
    assert 'alert_notifications_received_total{status="resolved"} 1.0' in metrics
    assert sample(client, "alert_notifications_received_total", {"status": "resolved"}) == 1.0
    history = history_frame(engine.db, since=history_since())
    assert sorted(history["status"]) == ["firing", "firing", "resolved"]
    assert set(history.loc[history["fingerprint"] == "f1", "layer"]) == {"semantic"}
    spans = intervals(engine.db, since=history_since())
    done = spans[spans["fingerprint"] == "f1"].iloc[0]
    assert bool(done["resolved"]) and done["seconds"] == pytest.approx(30 * 60 - 0.123456, abs=0.01)
    stats = resolve_stats(spans)
    assert stats.iloc[0].to_dict()["fired"] == 2


def history_since() -> datetime:
    return utcnow() - timedelta(days=1)


# --- end to end ------------------------------------------------------------------------------


def _history(server: RunningServer) -> dict[str, Any]:
    result = server.jamey("alerts", "history", "--days", "1", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(json.loads(result.stdout))


@pytest.mark.slow
@pytest.mark.real_clock  # Alertmanager stamps and resolves with its own clock
def test_a_real_alertmanager_delivers_to_a_real_service_with_the_credentials_file(
    serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = serve(JAMEY_AUTO_DIAGNOSE="0")
    created = server.jamey(
        "keys", "create", "--name", "alertmanager-webhook", "--scope", "alerts:write",
        "--rate-limit", "6000/minute", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)["key"]
    credentials = tmp_path / "webhook.credentials"
    credentials.write_text(key + "\n")
    credentials.chmod(0o600)
    am = start_alertmanager(tmp_path / "am", service_url=server.url, credentials=credentials, repeat="2s")
    try:
        firing = alert("JameyBackupFailed", "critical", layer="working")
        am.post_alerts(firing)

        def stored(status: str) -> list[dict[str, Any]]:
            rows = _history(server)["notifications"]
            return [r for r in rows if r["alertname"] == "JameyBackupFailed" and r["status"] == status]

        first = wait_until(
            lambda: stored("firing"), timeout=60, message="the firing notification is stored", every=0.2
        )
        assert first[0]["severity"] == "critical" and first[0]["layer"] == "working"
        assert first[0]["receiver"] == "critical"
        # Alertmanager repeats the notification every 2 s: still one row.
        wait_until(
            lambda: am.log().count("Notify success") >= 3, timeout=60, message="three deliveries", every=0.2
        )
        assert len(stored("firing")) == 1

        am.post_alerts(resolved(firing))
        done = wait_until(
            lambda: stored("resolved"), timeout=60, message="the resolution is stored", every=0.2
        )
        assert len(done) == 1
        per_alert = {row["alertname"]: row for row in _history(server)["alerts"]}
        assert per_alert["JameyBackupFailed"]["fired"] == 1
        assert per_alert["JameyBackupFailed"]["resolved"] == 1
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert 'alert_notifications_received_total{status="resolved"} 1.0' in metrics
        assert "Notify for alerts failed" not in am.log()
    finally:
        am.stop()
    assert key not in server.log() and key not in am.log()
