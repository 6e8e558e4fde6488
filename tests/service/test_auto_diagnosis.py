"""Auto-diagnosis: a real Alertmanager delivers a firing alert to a real `jamey serve`, which
starts the alert's diagnosis (actor alertmanager) once per alert instance however often the
notification repeats; the history row and `jamey alerts show` carry the run and its verdict.
In process: JAMEY_AUTO_DIAGNOSE=0, resolutions and a second delivery start nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from amserver import alert, start_alertmanager
from helpers import wait_until
from promserver import PromServer
from service_support import RunningServer, TestClient, make_persona

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.runbooks import launch, runs

URL = "/alertmanager/webhook"


def _json(server: RunningServer, *args: str) -> Any:
    result = server.jamey(*args, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def _diagnoses(server: RunningServer) -> list[dict[str, Any]]:
    found = _json(server, "runbook", "runs", "--runbook", "diagnose_alert")
    return [run for run in found if run["actor"] == "alertmanager"]


@pytest.mark.slow
def test_a_delivered_firing_alert_is_diagnosed_once_and_its_verdict_is_on_the_alert(
    serve: Callable[..., RunningServer], tmp_path: Path, backfilled_prometheus: PromServer
) -> None:
    server = serve(PROMETHEUS_URL=backfilled_prometheus.url)
    created = _json(
        server, "keys", "create", "--name", "alertmanager-webhook", "--scope", "alerts:write",
        "--rate-limit", "6000/minute",
    )  # fmt: skip
    credentials = tmp_path / "webhook.credentials"
    credentials.write_text(created["key"] + "\n")
    credentials.chmod(0o600)
    am = start_alertmanager(tmp_path / "am", service_url=server.url, credentials=credentials, repeat="2s")
    try:
        am.post_alerts(alert("JameyBackupTooOld", "critical"))
        started = wait_until(
            lambda: _diagnoses(server), timeout=60, message="a diagnosis run by alertmanager", every=0.2
        )
        run_id = started[0]["id"]

        def finished() -> dict[str, Any] | None:
            run = _json(server, "runbook", "runs", "--runbook", "diagnose_alert")[0]
            return run if run["status"] not in ("queued", "running") else None

        done = wait_until(finished, timeout=180, every=1.0, message="the diagnosis run finishes")
        assert done["status"] == "succeeded", done
        # Alertmanager repeats the notification every 2 s: still one diagnosis.
        wait_until(
            lambda: am.log().count("Notify success") >= 4, timeout=60, message="four deliveries", every=0.2
        )
        assert [run["id"] for run in _diagnoses(server)] == [run_id]
        assert done["parameters"]["alertname"] == "JameyBackupTooOld"
    finally:
        am.stop()
    rows = _json(server, "alerts", "history", "--days", "1")["notifications"]
    firing = [row for row in rows if row["alertname"] == "JameyBackupTooOld" and row["status"] == "firing"]
    assert len(firing) == 1 and firing[0]["diagnosis_run"] == run_id, rows
    shown = _json(server, "alerts", "show", firing[0]["fingerprint"])
    assert shown["diagnosis_run"] == run_id and shown["diagnosis_status"] == "succeeded"
    assert shown["verdict"].startswith("The last successful backup is"), shown
    assert shown["evidence"]["backups"] == 0 and "backup_age" in shown["evidence"], shown
    text = server.jamey("alerts", "show", firing[0]["fingerprint"])
    assert text.returncode == 0, text.stderr
    assert f"verdict: {shown['verdict']}" in text.stdout and "Evidence, gathered at " in text.stdout


def _payload(status: str, alertname: str = "JameyBackupFailed", fingerprint: str = "f1") -> dict[str, Any]:
    started = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    return {
        "version": "4",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": alertname, "severity": "warning"},
                "startsAt": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "endsAt": "0001-01-01T00:00:00Z"
                if status == "firing"
                else (started + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "fingerprint": fingerprint,
            }
        ],
    }


def _runs(engine: Engine) -> list[runs.RunRecord]:
    return runs.list_runs(engine.db, actor="alertmanager")


def test_auto_diagnose_0_starts_no_run(make_client: Callable[..., tuple[TestClient, Engine]]) -> None:
    client, engine = make_client(JAMEY_AUTO_DIAGNOSE="0")
    hook = make_persona(engine, "alertmanager-webhook", ("alerts:write",))
    assert client.post(URL, json=_payload("firing"), headers=hook.headers).status_code == 200
    assert _runs(engine) == []


def test_resolutions_and_alerts_outside_the_rules_start_no_run(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    client, engine = make_client()
    hook = make_persona(engine, "alertmanager-webhook", ("alerts:write",))
    assert client.post(URL, json=_payload("resolved"), headers=hook.headers).status_code == 200
    assert (
        client.post(URL, json=_payload("firing", "SomeoneElsesAlert", "f2"), headers=hook.headers).status_code
        == 200
    )
    assert _runs(engine) == []


def test_a_new_instance_starts_one_run_and_a_repeat_none(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    client, engine = make_client()
    hook = make_persona(engine, "alertmanager-webhook", ("alerts:write",))
    body = _payload("firing")
    assert client.post(URL, json=body, headers=hook.headers).status_code == 200
    assert client.post(URL, json=body, headers=hook.headers).status_code == 200
    found = _runs(engine)
    assert [run.runbook for run in found] == ["diagnose_alert"]
    assert found[0].parameters["alertname"] == "JameyBackupFailed"
    assert json.loads(found[0].parameters["labels"]) == {
        "alertname": "JameyBackupFailed",
        "severity": "warning",
    }
    launch.cancel_run(engine, found[0].id)  # the test needs its record, not its kernel
    assert not launch.wait_for_run(engine, found[0].id, timeout=60).active
