"""The Alerts page shows each firing alert's evidence: a real Alertmanager holds the alert, the
webhook's auto-diagnosis ran a real diagnosis run (a kernel), and the page shows "Evidence,
gathered at ... in N s", the verdict, the facts and the run; "Run diagnosis again" needs
ops:write; ?alert=NAME (the rules' runbook_url) opens that alert's evidence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from amserver import AmServer, alert, start_alertmanager
from helpers import wait_until
from promserver import PromServer
from streamlit.testing.v1 import AppTest

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.models import AlertNotification
from jamey_engine.observability.alert_history import Notification, store_notifications
from jamey_engine.observability.alertmanager import AlertmanagerClient
from jamey_engine.observability.promql import PromQuery
from jamey_engine.runbooks import launch, runs
from jamey_engine.runbooks.alert_evidence import alert_evidence
from jamey_engine.runbooks.auto_diagnosis import start_diagnoses
from jamey_engine.runbooks.diagnosis import diagnose

from .conftest import open_page, sign_in, texts

pytestmark = pytest.mark.slow


@pytest.fixture
def am(tmp_path: Path, wb_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AmServer]:
    server = start_alertmanager(tmp_path / "am")
    monkeypatch.setenv("ALERTMANAGER_URL", server.url)
    yield server
    server.stop()


@pytest.fixture
def diagnosed(am: AmServer, engine: Engine) -> str:
    """JameyBackupFailed firing in Alertmanager, delivered to the history and diagnosed; its fingerprint."""
    am.post_alerts(alert("JameyBackupFailed", "critical"))
    held = wait_until(
        lambda: AlertmanagerClient(am.url).alerts(), message="Alertmanager holds the alert", every=0.2
    )[0]
    notification = Notification(
        held.fingerprint,
        "firing",
        dict(held.labels),
        dict(held.annotations),
        held.starts_at or utcnow(),
        None,
    )
    store_notifications(engine.db, [notification])
    [run_id] = start_diagnoses(engine, [notification])
    finished = launch.wait_for_run(engine, run_id, timeout=180)
    assert finished.status == "succeeded", finished
    return str(held.fingerprint)


def test_a_firing_alert_shows_its_evidence_and_can_be_diagnosed_again(
    diagnosed: str, admin_app: AppTest, engine: Engine
) -> None:
    found = alert_evidence(engine.db, diagnosed)
    open_page(admin_app, "alerts")
    assert not admin_app.exception, admin_app.exception
    page = texts(admin_app)
    assert f"**{found.gathered_text}**" in page and "Evidence, gathered at " in page
    assert found.verdict and found.verdict in page
    assert found.verdict.startswith("No backup has ever succeeded")
    links = [link.proto.query_string for link in admin_app.get("page_link")]
    assert f"run={found.run.id}" in links if found.run else False, links
    admin_app.button(key=f"rediagnose_{diagnosed}").click().run()
    assert not admin_app.exception, admin_app.exception
    again = alert_evidence(engine.db, diagnosed)
    assert again.diagnosis_run != found.diagnosis_run and again.run is not None
    assert again.run.actor == "ops-admin"
    launch.cancel_run(engine, again.run.id)
    assert not launch.wait_for_run(engine, again.run.id, timeout=60).active


def test_without_ops_write_there_is_no_run_again_button(diagnosed: str, app: AppTest, engine: Engine) -> None:
    viewer = engine.keys.create("viewer", scopes=("ops:read",), actor="test").key
    sign_in(app, viewer)
    open_page(app, "alerts")
    assert not app.exception, app.exception
    assert "Evidence, gathered at " in texts(app)
    assert not [b for b in app.button if b.key == f"rediagnose_{diagnosed}"]


def test_the_alert_link_opens_that_alert_s_evidence(diagnosed: str, admin_app: AppTest) -> None:
    admin_app.query_params["alert"] = "JameyBackupFailed"
    open_page(admin_app, "alerts")
    assert not admin_app.exception, admin_app.exception
    page = texts(admin_app)
    assert "Showing JameyBackupFailed" in page and "Evidence, gathered at " in page
    admin_app.query_params["alert"] = "JameyHighLatency"
    open_page(admin_app, "alerts")
    assert "JameyHighLatency is not firing, and the alert history holds no diagnosis of it." in texts(
        admin_app
    )


def test_the_evidence_panel_draws_the_diagnosis_series_as_charts(
    admin_app: AppTest, engine: Engine, backfilled_prometheus: PromServer, am: AmServer
) -> None:
    """A real diagnosis of JameyHighErrorRate against a real Prometheus (tests/promserver.py's
    8% of failing requests): its run's summary holds the series, and the page draws each one."""
    starts = utcnow() - timedelta(minutes=5)
    with PromQuery(backfilled_prometheus.url, 10.0) as prom:
        found = diagnose(engine, prom, "JameyHighErrorRate", {}, starts, available_runbooks=set())
    summary = json.loads(json.dumps(found.summary(), default=str))
    assert [item["name"] for item in summary["series"]] == list(found.series)
    assert summary["series"] and all(item["points"] for item in summary["series"])
    run = runs.create_run(
        engine.db, runbook="diagnose_alert", parameters={}, actor="alertmanager", changes_data=False
    )
    runs.finish_if_active(engine.db, run.id, "succeeded", summary=summary)
    # Firing in the history (not in Alertmanager): ?alert= opens its newest diagnosis from there.
    notification = Notification("f00dfeed", "firing", {"alertname": "JameyHighErrorRate"}, {}, starts, None)
    store_notifications(engine.db, [notification])
    table = AlertNotification.__table__
    with engine.db.begin() as conn:
        conn.execute(sa.update(table).where(table.c.fingerprint == "f00dfeed").values(diagnosis_run=run.id))

    admin_app.query_params["alert"] = "JameyHighErrorRate"
    open_page(admin_app, "alerts")
    assert not admin_app.exception, admin_app.exception
    assert "Evidence, gathered at " in texts(admin_app)
    expected = [item["title"] for item in summary["series"]]
    drawn = [
        figure
        for figure in (json.loads(chart.proto.spec) for chart in admin_app.get("plotly_chart"))
        if figure["layout"].get("title", {}).get("text") in expected
    ]
    assert [figure["layout"]["title"]["text"] for figure in drawn] == expected
    for figure, item in zip(drawn, summary["series"], strict=True):
        lines = [trace for trace in figure["data"] if trace.get("name") and "threshold" not in trace["name"]]
        # x holds the timestamps as a list (y may be packed as a typed array)
        assert sum(len(trace["x"]) for trace in lines) == len(item["points"]), item["name"]
        assert figure["layout"]["shapes"], "the firing time is marked"
