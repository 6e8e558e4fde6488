"""One alerts:write key cannot flood the alert history: every field and payload has a cap the
real Alertmanager never reaches; alerts older than the history (``startsAt: 1970``) are never
stored and are pruned by their own times; every history query reads only its range, at most
MAX_ROWS rows; and the stack's webhook key gets a limit fit for Alertmanager, not for a flood."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from service.service_support import TestClient, count_rows, make_persona

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.observability import alert_history
from jamey_engine.observability.alert_history import (
    Notification,
    intervals,
    prune_history,
    store_notifications,
)
from jamey_engine.observability.alert_receiver import ensure_webhook_key, render_alertmanager_config
from jamey_engine.observability.webhook import MAX_ALERTS, MAX_LABEL_CHARS, MAX_PAIRS, MAX_TEXT_CHARS

URL = "/alertmanager/webhook"
REPO = Path(__file__).resolve().parents[2]


def _alert(fingerprint: str, *, starts: str | None = None, **extra: Any) -> dict[str, Any]:
    started = starts or (utcnow() - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "status": "firing",
        "labels": {"alertname": "JameyFlood", "severity": "warning"},
        "annotations": {"summary": "flood"},
        "startsAt": started,
        "fingerprint": fingerprint,
        **extra,
    }


def _payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "warning", "alerts": list(alerts)}


@pytest.fixture
def hook(make_client: Callable[..., tuple[TestClient, Engine]]) -> tuple[TestClient, Engine, dict[str, str]]:
    client, engine = make_client()
    return client, engine, make_persona(engine, "hook", ("alerts:write",)).headers


OVER_CAPS = [
    ("alerts", _payload(*(_alert(f"f{n}") for n in range(MAX_ALERTS + 1)))),
    (
        "alerts[0].labels",
        _payload(_alert("f", labels={"alertname": "A", **{f"l{n}": "v" for n in range(MAX_PAIRS)}})),
    ),
    (
        "alerts[0].labels.job",
        _payload(_alert("f", labels={"alertname": "A", "job": "j" * (MAX_LABEL_CHARS + 1)})),
    ),
    ("alerts[0].labels (a name)", _payload(_alert("f", labels={"alertname": "A", "n" * 129: "v"}))),
    (
        "alerts[0].annotations.description",
        _payload(_alert("f", annotations={"description": "d" * (MAX_TEXT_CHARS + 1)})),
    ),
    ("alerts[0].generatorURL", _payload(_alert("f", generatorURL="http://x/" + "g" * MAX_TEXT_CHARS))),
    ("commonLabels", {**_payload(_alert("f")), "commonLabels": {f"l{n}": "v" for n in range(MAX_PAIRS + 1)}}),
]


@pytest.mark.parametrize(("where", "body"), OVER_CAPS, ids=[where for where, _ in OVER_CAPS])
def test_a_field_past_its_cap_is_refused_whole(
    hook: tuple[TestClient, Engine, dict[str, str]], where: str, body: dict[str, Any]
) -> None:
    client, engine, headers = hook
    answer = client.post(URL, json=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith(where + ":"), answer.text
    assert count_rows(engine, "alert_notifications") == 0


def test_the_largest_payload_within_the_caps_is_stored(
    hook: tuple[TestClient, Engine, dict[str, str]],
) -> None:
    client, engine, headers = hook
    labels = {"alertname": "JameyFlood", **{f"l{n}": "v" * MAX_LABEL_CHARS for n in range(MAX_PAIRS - 1)}}
    alerts = [_alert(f"f{n}", labels=labels) for n in range(3)] + [
        _alert(f"g{n}") for n in range(MAX_ALERTS - 3)
    ]
    answer = client.post(URL, json=_payload(*alerts), headers=headers)
    assert answer.status_code == 200, answer.text
    assert count_rows(engine, "alert_notifications") == MAX_ALERTS


def test_alerts_older_than_the_history_are_never_stored(
    hook: tuple[TestClient, Engine, dict[str, str]],
) -> None:
    client, engine, headers = hook
    flood = [_alert(secrets.token_hex(8), starts="1970-01-01T00:00:00Z") for _ in range(200)]
    answer = client.post(URL, json=_payload(*flood, _alert("recent")), headers=headers)
    assert answer.status_code == 200, answer.text
    assert count_rows(engine, "alert_notifications") == 1


def _ancient(count: int) -> list[Notification]:
    labels = {"alertname": "JameyFlood"}
    started = utcnow().replace(year=1970)
    return [Notification(secrets.token_hex(8), "firing", labels, {}, started, None) for _ in range(count)]


def test_history_is_pruned_by_the_alerts_own_times(engine: Engine) -> None:
    now = utcnow()
    labels = {"alertname": "JameyFlood"}
    # Stored as an older version did (received now, whatever the alert's times).
    store_notifications(engine.db, _ancient(50), keep_days=30_000)
    long_done = [
        Notification("long", "firing", labels, {}, now - timedelta(days=100), None),
        Notification("long", "resolved", labels, {}, now - timedelta(days=100), now - timedelta(days=1)),
    ]
    store_notifications(engine.db, long_done, keep_days=30_000)
    assert count_rows(engine, "alert_notifications") == 52
    assert prune_history(engine.db, 90) == 51
    kept = intervals(engine.db, now - timedelta(days=7), now)
    assert list(kept["fingerprint"]) == ["long"] and bool(kept.iloc[0]["resolved"])


def test_intervals_read_only_their_range_and_at_most_max_rows(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = utcnow()
    store_notifications(engine.db, _ancient(300), keep_days=30_000)
    labels = {"alertname": "JameyRecent"}
    recent = [
        Notification(f"r{n}", "firing", labels, {}, now - timedelta(minutes=n + 1), None) for n in range(30)
    ]
    store_notifications(engine.db, recent)
    spans = intervals(engine.db, now - timedelta(days=1), now)
    assert set(spans["alertname"]) == {"JameyRecent"} and len(spans) == 30
    monkeypatch.setattr(alert_history, "MAX_ROWS", 10)
    capped = intervals(engine.db, now - timedelta(days=1), now)
    assert list(capped["fingerprint"]) == [f"r{n}" for n in range(9, -1, -1)], "the latest starts are kept"
    assert len(alert_history.history_frame(engine.db, now - timedelta(days=1), limit=10**9)) == 10


def test_the_stacks_webhook_key_and_config_fit_alertmanager_not_a_flood(
    engine: Engine, tmp_path: Path
) -> None:
    credentials = tmp_path / "hook.credentials"
    assert ensure_webhook_key(engine, credentials)
    (key,) = engine.keys.list()
    assert key.rate_limit == "120/minute"
    rendered = render_alertmanager_config(
        REPO / "prometheus" / "alertmanager.yml", tmp_path / "am.yml", "http://127.0.0.1:9", credentials
    )
    text = rendered.read_text()
    assert text.count(f"max_alerts: {MAX_ALERTS}") == 2
