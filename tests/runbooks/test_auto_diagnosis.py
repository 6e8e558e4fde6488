"""runbooks.auto_diagnosis on SQLite and PostgreSQL: of two service workers (two engines on one
database) storing the same firing alert, exactly one starts its diagnosis, and the history row
records that run; a resolution starts nothing."""

from __future__ import annotations

from datetime import timedelta

from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.observability.alert_history import Notification, history_frame, store_notifications
from jamey_engine.runbooks import launch, runs
from jamey_engine.runbooks.alert_evidence import alert_evidence
from jamey_engine.runbooks.auto_diagnosis import labels_parameter, start_diagnoses


def test_two_workers_start_one_diagnosis_per_alert_instance(db_engine: Engine, db_settings: Settings) -> None:
    began = utcnow().replace(microsecond=0) - timedelta(minutes=2)
    labels = {"alertname": "JameyDataDirDiskNearlyFull", "severity": "warning"}
    firing = Notification("fp-disk", "firing", labels, {}, began, None)
    other = Engine(db_settings)
    try:
        store_notifications(db_engine.db, [firing])
        store_notifications(other.db, [firing])
        started = start_diagnoses(db_engine, [firing]) + start_diagnoses(other, [firing])
        resolved = Notification("fp-disk", "resolved", labels, {}, began, began + timedelta(minutes=1))
        store_notifications(other.db, [resolved])
        assert start_diagnoses(other, [resolved]) == []
    finally:
        other.close()
    assert len(started) == 1, started
    for run_id in started:  # the record is what this test needs; its kernel ends before the database goes
        launch.cancel_run(db_engine, run_id)
        assert not launch.wait_for_run(db_engine, run_id, timeout=60).active
    found = runs.list_runs(db_engine.db, actor="alertmanager")
    assert [run.id for run in found] == started and found[0].status == "cancelled"
    assert found[0].parameters["alertname"] == "JameyDataDirDiskNearlyFull"
    frame = history_frame(db_engine.db, utcnow() - timedelta(hours=1))
    assert list(frame[frame["status"] == "firing"]["diagnosis_run"]) == started
    assert alert_evidence(db_engine.db, "fp-disk").status == "resolved"


def test_labels_too_long_for_a_parameter_keep_the_ones_a_diagnosis_reads() -> None:
    labels = {"alertname": "JameyMemoryIndexTooLarge", "layer": "episodic", "noise": "x" * 2000}
    assert labels_parameter(labels) == '{"alertname": "JameyMemoryIndexTooLarge", "layer": "episodic"}'
