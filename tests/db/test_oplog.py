"""The operation log on SQLite and PostgreSQL: what each process records, the metrics read back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import time_machine

from jamey_engine.db import Database
from jamey_engine.errors import InvalidInput
from jamey_engine.oplog import KINDS, operation_summary, recent_operations, record_operation

from .test_database import ODD_MOMENT


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.close()


def test_an_empty_log_summarises_to_zeros_and_nones(db: Database) -> None:
    summary = operation_summary(db)
    assert summary.counts[("backup", "success")] == 0
    assert summary.counts[("prune", "failure")] == 0
    assert summary.last_success_timestamp == dict.fromkeys(KINDS)  # every kind, none yet
    assert summary.pruned_documents == {}


def test_the_summary_counts_runs_and_keeps_the_last_success(db: Database) -> None:
    with time_machine.travel(ODD_MOMENT, tick=False) as clock:
        record_operation(db, "backup", "success", 3.5, size_bytes=1000)
        clock.shift(60)
        record_operation(db, "backup", "success", 4.5, size_bytes=6_000_000_000)
        clock.shift(60)
        record_operation(db, "backup", "failure", 0.2, detail="disk full")
        record_operation(db, "restore", "success", 9.0)
        record_operation(db, "prune", "success", 1.0, layer="working", count=5)
        record_operation(db, "prune", "success", 1.0, layer="working", count=2)
        record_operation(db, "prune", "failure", 1.0, layer="episodic", count=100)
    summary = operation_summary(db)
    assert summary.counts[("backup", "success")] == 2
    assert summary.counts[("backup", "failure")] == 1
    assert summary.counts[("restore", "success")] == 1
    assert summary.last_success_timestamp["backup"] == ODD_MOMENT.timestamp() + 60
    assert summary.last_duration_seconds["backup"] == 4.5
    assert summary.last_size_bytes["backup"] == 6_000_000_000
    assert summary.last_success_timestamp["restore"] == ODD_MOMENT.timestamp() + 120
    assert summary.pruned_documents == {"working": 7}
    newest = recent_operations(db, limit=1)[0]
    assert newest["kind"] == "prune" and newest["status"] == "failure"
    assert recent_operations(db, kind="backup")[-1]["size_bytes"] == 1000


def test_another_database_handle_sees_the_same_log(db: Database) -> None:
    record_operation(db, "restore", "failure", 1.0, detail="x" * 5000)
    other = Database(db.url.render_as_string(hide_password=False))
    try:
        assert operation_summary(other).counts[("restore", "failure")] == 1
        assert len(str(recent_operations(other)[0]["detail"])) == 2000
    finally:
        other.close()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"kind": "compact", "status": "success", "duration_seconds": 1.0}, "'compact'"),
        ({"kind": "backup", "status": "ok", "duration_seconds": 1.0}, "'ok'"),
        ({"kind": "backup", "status": "success", "duration_seconds": -1.0}, "duration_seconds"),
        ({"kind": "backup", "status": "success", "duration_seconds": 1.0, "size_bytes": -5}, "size_bytes"),
    ],
)
def test_a_bad_record_is_refused_and_writes_nothing(
    db: Database, kwargs: dict[str, object], needle: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        record_operation(db, **kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)
    assert db.count_rows()["operations"] == 0


def test_an_operation_names_who_ran_it(db: Database) -> None:
    record_operation(db, "backup", "success", 1.0, detail="b1", actor="ops-admin")
    record_operation(db, "delete", "success", 0.1, detail="b1", actor="schedule")
    record_operation(db, "prune", "success", 0.5, layer="working", count=3)
    logged = [(op["kind"], op["actor"]) for op in recent_operations(db)]
    assert logged == [("prune", None), ("delete", "schedule"), ("backup", "ops-admin")]
    assert operation_summary(db).counts[("delete", "success")] == 1


def test_every_way_a_runbook_run_ends_is_one_operation_status() -> None:
    from jamey_engine import oplog
    from jamey_engine.runbooks.runs import STATUSES as RUN_STATUSES

    unfinished = {"queued", "running"}
    assert set(oplog.RUN_OPERATION_STATUS) == set(RUN_STATUSES) - unfinished
    assert set(oplog.RUN_OPERATION_STATUS.values()) == set(oplog.STATUSES)
    assert [s for s, o in oplog.RUN_OPERATION_STATUS.items() if o == "success"] == ["succeeded"]
