"""Acknowledging an alert: over HTTP (ops:write, the key's name as actor) and the CLI, shown in
the history, and ended by the resolved notification Alertmanager delivers to the webhook."""

from __future__ import annotations

import json
from collections.abc import Callable

from click.testing import CliRunner
from service_support import TestClient, make_persona
from test_alert_webhook import URL, notification, payload

from jamey_engine.cli import cli
from jamey_engine.engine import Engine
from jamey_engine.observability.alert_acks import acknowledgements, active_acknowledgements

FINGERPRINT = "b0a1c2d3e4f50617"


def test_an_acknowledgement_shows_until_the_webhook_delivers_the_resolution(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    client, engine = make_client()
    hook = make_persona(engine, "alertmanager-webhook", ("alerts:write",))
    olga = make_persona(engine, "olga-oncall", ("ops:write",))
    viewer = make_persona(engine, "victor-viewer", ("ops:read",))
    ack_url = f"/admin/alerts/{FINGERPRINT}/ack"

    before = client.post(ack_url, json={"comment": "on it"}, headers=olga.headers)
    assert before.status_code == 404 and "has no firing notification" in before.json()["error"]
    firing = notification(FINGERPRINT)
    assert client.post(URL, json=payload(firing), headers=hook.headers).status_code == 200

    assert client.post(ack_url, json={"comment": "on it"}, headers=viewer.headers).status_code == 403
    assert client.post(ack_url, json={"comment": "   "}, headers=olga.headers).status_code == 422
    done = client.post(ack_url, json={"comment": "restarting the backup job"}, headers=olga.headers)
    assert done.status_code == 201, done.text
    body = done.json()
    assert (body["actor"], body["comment"], body["alertname"], body["active"]) == (
        "olga-oncall",
        "restarting the backup job",
        "JameyBackupFailed",
        True,
    )
    assert body["ended_at"] is None
    assert set(active_acknowledgements(engine.db)) == {FINGERPRINT}

    history = CliRunner().invoke(
        cli, ["--data-dir", str(engine.settings.data_dir), "alerts", "history", "--json"]
    )
    assert history.exit_code == 0, history.output
    (shown,) = json.loads(history.output)["acknowledgements"]
    assert (shown["actor"], shown["active"]) == ("olga-oncall", True)

    resolution = notification(FINGERPRINT, status="resolved")
    assert client.post(URL, json=payload(resolution), headers=hook.headers).status_code == 200
    assert active_acknowledgements(engine.db) == {}
    (ended,) = acknowledgements(engine.db)
    assert ended.ended_at is not None and not ended.active
    assert ended.ended_at.isoformat().startswith(resolution["endsAt"][:19])
    again = client.post(ack_url, json={"comment": "late"}, headers=olga.headers)
    assert again.status_code == 409 and "resolved at" in again.json()["error"]

    # The alert fires again: a new instance, not acknowledged by the old acknowledgement.
    refired = dict(firing, startsAt=resolution["endsAt"].replace("Z", ".5Z"))
    assert client.post(URL, json=payload(refired), headers=hook.headers).status_code == 200
    assert active_acknowledgements(engine.db) == {}


def test_the_cli_acknowledges_as_its_user_and_refuses_bad_input(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    client, engine = make_client()
    hook = make_persona(engine, "alertmanager-webhook", ("alerts:write",))
    assert client.post(URL, json=payload(notification(FINGERPRINT)), headers=hook.headers).status_code == 200
    base = ["--data-dir", str(engine.settings.data_dir), "alerts", "ack"]
    runner = CliRunner()
    empty = runner.invoke(cli, [*base, FINGERPRINT, "--comment", " "])
    assert empty.exit_code != 0 and "comment must not be empty" in empty.output
    bad = runner.invoke(cli, [*base, "not-a-fingerprint", "--comment", "x"])
    assert bad.exit_code != 0 and "fingerprint 'not-a-fingerprint' is not an alert fingerprint" in bad.output
    assert acknowledgements(engine.db) == []
    done = runner.invoke(cli, [*base, FINGERPRINT, "--comment", "looking", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["actor"].startswith("cli:")
