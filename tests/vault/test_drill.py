"""Restore drills: a good backup passes with its figures and the live data untouched; a damaged
one fails naming the reason; the notebook runs the same drill under papermill."""

from __future__ import annotations

from pathlib import Path

from notebook_runner import run_notebook

from jamey_engine import doctor, oplog
from jamey_engine.engine import Engine
from jamey_engine.observability.metrics import build_registry
from jamey_engine.vault.drill import run_drill

from .support import change_everything, fill, state
from .test_damage import rewrite_member


def last_drill(engine: Engine) -> float | None:
    return build_registry(engine).get_sample_value("backup_last_drill_success_timestamp_seconds", {})  # type: ignore[no-any-return]


def test_a_drill_of_a_good_backup_passes_with_its_figures_and_leaves_the_live_data_alone(
    engine: Engine, tmp_path: Path
) -> None:
    fill(engine, per_layer=4)
    backup = engine.vault.create()
    change_everything(engine)
    live = state(engine, tmp_path)
    assert last_drill(engine) is None
    report = run_drill(engine.vault, actor="test")
    assert report.passed, report.reason
    assert report.backup_id == backup.id
    assert report.documents == backup.documents and report.keys == backup.keys == 4
    assert set(report.searches) == {layer for layer, count in backup.documents.items() if count}
    assert report.tables["api_keys"] == 4
    assert state(engine, tmp_path) == live, "a drill never touches the live data"
    assert "passed" in report.summary() and f"{sum(backup.documents.values())} documents" in report.summary()
    assert last_drill(engine) is not None
    drills = oplog.recent_operations(engine.db, kind="drill")
    assert [(d["status"], d["actor"]) for d in drills] == [("success", "test")]
    found = [f for f in doctor.run(engine.settings).findings if f.check == "restore drill"]
    assert [(f.status, backup.id in f.detail) for f in found] == [(doctor.OK, True)]


def test_a_drill_of_a_damaged_backup_fails_naming_the_reason(engine: Engine, tmp_path: Path) -> None:
    fill(engine, per_layer=4)
    backup = engine.vault.create()
    rewrite_member(backup.path, "database.json")
    report = run_drill(engine.vault, backup.id)
    assert not report.passed
    assert "database.json" in report.reason and "FAILED" in report.summary()
    assert last_drill(engine) is None
    assert [d["status"] for d in oplog.recent_operations(engine.db, kind="drill")] == ["failure"]
    found = [f for f in doctor.run(engine.settings).findings if f.check == "restore drill"]
    assert [f.status for f in found] == [doctor.PROBLEM] and "database.json" in found[0].detail


def test_the_restore_drill_notebook_runs_the_drill(engine: Engine, tmp_path: Path) -> None:
    fill(engine, per_layer=2)
    backup = engine.vault.create()
    engine.close()
    run = run_notebook("restore_drill.ipynb", tmp_path, data_dir=str(engine.settings.data_dir))
    assert f"restore drill of {backup.id} passed" in run.text, run.text


def test_backup_drills_enabled_follows_the_restore_drill_schedule_and_doctor_says_so(engine: Engine) -> None:
    from jamey_engine.runbooks.schedules import add_schedule, pause_schedule, resume_schedule

    def enabled() -> float | None:
        return build_registry(engine).get_sample_value("backup_drills_enabled", {})  # type: ignore[no-any-return]

    def schedule_finding() -> str:
        return next(
            f.status for f in doctor.run(engine.settings).findings if f.check == "restore drill schedule"
        )

    engine.db.count_rows()  # the database exists (doctor only reads one that does)
    assert enabled() == 0.0 and schedule_finding() == "warning"
    schedule = add_schedule(engine, "restore_drill", "0 4 * * 0", created_by="tester", paused=True)
    assert enabled() == 0.0, "a paused drill schedule is no enabled drill"
    resume_schedule(engine.db, schedule.id)
    assert enabled() == 1.0 and schedule_finding() == "ok"
    pause_schedule(engine.db, schedule.id)
    assert enabled() == 0.0 and schedule_finding() == "warning"
