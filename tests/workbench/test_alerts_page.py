"""The Alerts page against a real Alertmanager (the project's config): alerts now with their
state, the silence form's success and error paths, expiring behind a confirmation, the history
with its timeline and time to resolve, and Alertmanager unreachable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from amserver import AmServer, alert, start_alertmanager
from helpers import wait_until
from streamlit.testing.v1 import AppTest

from jamey_engine import oplog
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.observability.alert_history import Notification, store_notifications
from jamey_engine.observability.alertmanager import AlertmanagerClient

from .conftest import figures, open_page, sign_in, texts


@pytest.fixture
def am(tmp_path: Path, wb_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AmServer]:
    server = start_alertmanager(tmp_path / "am")
    monkeypatch.setenv("ALERTMANAGER_URL", server.url)
    yield server
    server.stop()


def firing(am: AmServer, *alerts: dict[str, object]) -> None:
    am.post_alerts(*alerts)
    wait_until(
        lambda: len(AlertmanagerClient(am.url).alerts()) >= len(alerts),
        message="Alertmanager holds the alerts",
        every=0.2,
    )


def test_an_alert_is_silenced_from_the_page(am: AmServer, admin_app: AppTest, engine: Engine) -> None:
    firing(am, alert("JameyBackupFailed", "critical", layer="working"), alert("JameyHighLatency"))
    open_page(admin_app, "alerts")
    assert not admin_app.exception, admin_app.exception
    page = texts(admin_app)
    assert "Now: 2 firing, 0 pending" in page
    assert "**JameyBackupFailed** :red-badge[critical]" in page
    target = next(a for a in AlertmanagerClient(am.url).alerts() if a.alertname == "JameyBackupFailed")
    admin_app.button(key=f"silence_for_{target.fingerprint}").click().run()
    matchers = admin_app.text_area(key="silence_matchers").value
    assert "alertname=JameyBackupFailed" in matchers and "layer=working" in matchers
    assert any("catch 1 current alert(s): JameyBackupFailed" in i.value for i in admin_app.info)
    admin_app.text_input(key="silence_comment").input("restore in progress").run()
    admin_app.button(key="silence_submit").click().run()
    assert not admin_app.exception, admin_app.exception
    assert any(s.value.startswith("Silenced 1 alert(s) until") for s in admin_app.success), texts(admin_app)
    client = AlertmanagerClient(am.url)
    silenced = wait_until(
        lambda: [
            a for a in client.alerts() if a.alertname == "JameyBackupFailed" and a.state == "suppressed"
        ],
        message="the alert is suppressed",
        every=0.2,
    )
    silence = client.silence(silenced[0].silenced_by[0])
    assert silence.created_by == "ops-admin" and silence.comment == "restore in progress"
    assert oplog.recent_operations(engine.db, kind="silence")[0]["actor"] == "ops-admin"
    open_page(admin_app, "alerts")
    assert ":violet-badge[silenced by ops-admin until" in texts(admin_app)


def test_the_silence_form_refuses_what_it_must(am: AmServer, admin_app: AppTest) -> None:
    firing(am, alert("JameyHighLatency"))
    open_page(admin_app, "alerts")
    form = admin_app.text_area(key="silence_matchers")
    form.input("alertname=NothingLikeThis").run()
    assert any("catch no current alert" in w.value for w in admin_app.warning)
    assert admin_app.button(key="silence_submit").disabled, "never offers a silence matching nothing"
    admin_app.text_area(key="silence_matchers").input("not a matcher").run()
    assert any("is not NAME=VALUE" in e.value for e in admin_app.error)
    admin_app.text_area(key="silence_matchers").input("alertname=JameyHighLatency").run()
    assert not admin_app.button(key="silence_submit").disabled
    admin_app.button(key="silence_submit").click().run()  # no comment
    assert not admin_app.exception, admin_app.exception
    assert any("needs a comment" in e.value for e in admin_app.error)
    assert AlertmanagerClient(am.url).silences() == []


def test_a_silence_is_expired_only_after_confirmation(
    am: AmServer, admin_app: AppTest, engine: Engine
) -> None:
    firing(am, alert("JameyHighLatency"))
    client = AlertmanagerClient(am.url)
    from jamey_engine.observability.alertmanager import Matcher
    from jamey_engine.observability.silences import create_silence

    silence_id = create_silence(
        client, engine.db, None, [Matcher("alertname", "JameyHighLatency")], timedelta(hours=1),
        actor="someone", comment="noise",
    )  # fmt: skip
    open_page(admin_app, "alerts")
    assert admin_app.dataframe, "the silences table"
    admin_app.button(key="expire_ask").click().run()
    assert any(f"Expire silence {silence_id}?" in w.value for w in admin_app.warning)
    assert [s.id for s in client.silences()] == [silence_id], "nothing expired before confirming"
    admin_app.button(key="expire_confirm").click().run()
    assert not admin_app.exception, admin_app.exception
    assert any(f"Silence {silence_id} expired." in s.value for s in admin_app.success)
    assert client.silences() == []
    assert oplog.recent_operations(engine.db, kind="silence")[0]["actor"] == "ops-admin"


def test_history_shows_the_table_timeline_and_time_to_resolve(
    am: AmServer, admin_app: AppTest, engine: Engine
) -> None:
    now = utcnow()
    rows = []
    for hours, minutes in ((30, 10), (20, 30)):
        start = now - timedelta(hours=hours)
        labels = {"alertname": "JameyBackupFailed", "severity": "critical"}
        rows.append(Notification(f"fp{hours}", "firing", labels, {"summary": "s"}, start, None))
        rows.append(
            Notification(f"fp{hours}", "resolved", labels, {}, start, start + timedelta(minutes=minutes))
        )
    rows.append(
        Notification(
            "fpnow", "firing", {"alertname": "JameyHighLatency", "severity": "warning"}, {}, now, None
        )
    )
    store_notifications(engine.db, rows)
    open_page(admin_app, "alerts")
    assert not admin_app.exception, admin_app.exception
    timeline = figures(admin_app)
    assert len(timeline) == 1
    bars = {trace["name"]: trace for trace in timeline[0]["data"]}
    assert set(bars) == {"critical", "warning"}
    assert len(bars["critical"]["y"]) == 2, "one bar per firing interval"
    stats = admin_app.dataframe[-2].value
    backup = stats[stats["alert"] == "JameyBackupFailed"].iloc[0]
    assert (backup["fired"], backup["resolved"]) == (2, 2)
    assert backup["mean time to resolve"] == "20m" and backup["longest time to resolve"] == "30m"
    table = admin_app.dataframe[-1].value
    assert len(table) == 5
    admin_app.selectbox(key="history_severity").set_value("warning").run()
    assert len(admin_app.dataframe[-1].value) == 1
    admin_app.selectbox(key="history_alert").set_value("JameyBackupFailed").run()
    assert "No alert notification" in texts(admin_app)


def test_alertmanager_unreachable_is_said_once_and_the_history_still_shows(
    admin_app: AppTest, engine: Engine
) -> None:
    labels = {"alertname": "JameyBackupFailed", "severity": "critical"}
    store_notifications(engine.db, [Notification("fp", "firing", labels, {}, utcnow(), None)])
    open_page(admin_app, "alerts")
    assert not admin_app.exception, admin_app.exception
    errors = [e.value for e in admin_app.error]
    assert sum(e.startswith("Alertmanager unreachable at http://127.0.0.1:") for e in errors) == 1, errors
    assert "Silences need Alertmanager" in texts(admin_app)
    assert len(figures(admin_app)) == 1


def test_a_viewer_sees_alerts_but_no_silence_form(am: AmServer, app: AppTest, engine: Engine) -> None:
    key = engine.keys.create("viewer", scopes=("ops:read",), actor="test").key
    sign_in(app, key)
    firing(am, alert("JameyHighLatency"))
    open_page(app, "alerts")
    assert not app.exception, app.exception
    assert "Now: 1 firing, 0 pending" in texts(app)
    assert "Silencing and expiring need the **ops:write** scope." in texts(app)
    assert not [b for b in app.button if b.key and b.key.startswith(("silence_", "expire_"))]


def test_run_runbook_sits_next_to_a_firing_alert_a_runbook_answers(am: AmServer, admin_app: AppTest) -> None:
    firing(am, alert("JameyMemoryIndexTooLarge", "warning", layer="semantic"), alert("JameyHighLatency"))
    open_page(admin_app, "alerts")
    assert not admin_app.exception, admin_app.exception
    runbooks = [b.proto.url for b in admin_app.get("link_button") if b.proto.label == "Run runbook"]
    assert runbooks == ["/runbooks?runbook=prune_memories&layer=semantic"], (
        "only where runbook_for_alert maps"
    )
