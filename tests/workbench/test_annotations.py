"""Annotations on the dashboards: a prune shows on the index-size chart at its time, alert
intervals as bands, key rotations and revocations as markers; the toggle lives in the URL."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from promserver import PromServer
from streamlit.testing.v1 import AppTest

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.observability.alert_history import Notification, store_notifications
from jamey_engine.observability.annotations import chart_annotations
from jamey_engine.observability.dashboards import annotations_for_chart

from .conftest import figures, open_page


def test_a_prune_shows_on_the_index_size_chart_at_its_time(
    prom_env: PromServer, admin_app: AppTest, engine: Engine
) -> None:
    engine.memory.store_batch("working", ["an old note"])
    before = utcnow()
    engine.prune(timedelta(days=30), ["working"], source="cli", actor="alice")
    after = utcnow()
    admin_app.query_params.update(range="1h", chart="index_size")
    open_page(admin_app, "dashboards")
    assert not admin_app.exception, admin_app.exception
    assert admin_app.query_params["annotations"] == "on"
    (figure,) = figures(admin_app)
    marks = next(trace for trace in figure["data"] if trace["name"] == "operations")
    (moment,) = [pd.Timestamp(x) for x in marks["x"]]
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment
    assert (
        pd.Timestamp(before) - pd.Timedelta(seconds=1)
        <= moment
        <= pd.Timestamp(after) + pd.Timedelta(seconds=1)
    )
    assert marks["hovertext"] == ["prune of working (0 documents)<br>by alice<br>success"]
    assert any(shape["type"] == "line" for shape in figure["layout"]["shapes"])

    admin_app.toggle(key="dash_annotations").set_value(False).run()
    assert admin_app.query_params["annotations"] == "off"
    (figure,) = figures(admin_app)
    assert "operations" not in [trace["name"] for trace in figure["data"]]


def test_the_frame_holds_key_changes_and_alert_bands(engine: Engine) -> None:
    start = utcnow() - timedelta(hours=1)
    key = engine.keys.create("rotating", scopes=("memory:read",), actor="alice")
    engine.keys.rotate(key.id, actor="alice")
    labels = {"alertname": "JameyBackupFailed", "severity": "critical"}
    began = utcnow() - timedelta(minutes=30)
    store_notifications(
        engine.db,
        [
            Notification("fp", "firing", labels, {}, began, None),
            Notification("fp", "resolved", labels, {}, began, began + timedelta(minutes=10)),
        ],
    )
    frame = chart_annotations(engine.db, start)
    kinds = dict(zip(frame["what"], frame["kind"], strict=True))
    assert kinds["key 'rotating' rotated"] == "operation"
    assert kinds["JameyBackupFailed (critical) firing"] == "alert"
    band = frame[frame["kind"] == "alert"].iloc[0]
    assert band["end"] - band["start"] == pd.Timedelta(minutes=10)
    assert band["text"] == "JameyBackupFailed (critical) firing<br>by Alertmanager<br>resolved"


def test_a_chart_shows_the_bands_of_its_own_alerts_only(engine: Engine) -> None:
    began = utcnow() - timedelta(minutes=30)
    store_notifications(
        engine.db,
        [
            Notification("fp1", "firing", {"alertname": "JameyHighErrorRate"}, {}, began, None),
            Notification("fp2", "firing", {"alertname": "JameyBackupFailed"}, {}, began, None),
        ],
    )
    engine.keys.create("someone", scopes=("memory:read",), actor="alice")
    engine.keys.rotate(engine.keys.list()[0].id, actor="alice")
    frame = chart_annotations(engine.db, utcnow() - timedelta(hours=1))
    errors = annotations_for_chart(frame, "error_rate")
    assert list(errors[errors["kind"] == "alert"]["alertname"]) == ["JameyHighErrorRate"]
    backups = annotations_for_chart(frame, "backup_counts")
    assert list(backups[backups["kind"] == "alert"]["alertname"]) == ["JameyBackupFailed"]
    assert (annotations_for_chart(frame, "backup_size")["kind"] == "alert").sum() == 0
    for chart in ("error_rate", "backup_counts", "backup_size"):
        assert (annotations_for_chart(frame, chart)["kind"] == "operation").sum() == 1, (
            "markers stay on every chart"
        )
