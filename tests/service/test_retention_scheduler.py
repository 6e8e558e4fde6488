"""The retention schedule in process: one owner per data dir, runs recorded as ``retention``,
the next run due an interval after the last, and the lock handed over when the owner stops."""

from __future__ import annotations

from datetime import timedelta

import time_machine

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.oplog import recent_operations
from jamey_engine.service.scheduler import RetentionScheduler


def test_one_owner_runs_the_schedule_and_hands_it_over(engine: Engine) -> None:
    other = Engine(engine.settings)
    first = RetentionScheduler(engine, timedelta(hours=1))
    second = RetentionScheduler(other, timedelta(hours=1))
    try:
        now = utcnow()
        engine.memory.store_batch(
            "semantic",
            [{"content": f"fact {i}", "timestamp": now - timedelta(days=i * 10)} for i in range(6)],
        )
        engine.retention.set("semantic", max_age="25d", actor="test")
        assert first.first_delay() == 0.0, "never run: due now"
        assert first.take_lock() and first.owner
        assert not second.take_lock(), "a second process does not run the schedule"
        with time_machine.travel(utcnow(), tick=False) as clock:  # the run and the delay on one clock
            assert first.run_once()
            assert first.first_delay() == 3600, "the next run is an interval after the last"
            clock.shift(timedelta(minutes=25))
            assert first.first_delay() == 35 * 60
        assert engine.memory.count("semantic") == 3
        assert {row["actor"] for row in recent_operations(engine.db, kind="retention")} == {"retention"}
    finally:
        first.stop()
    try:
        assert second.take_lock(), "the lock is free once the owner stops"
    finally:
        second.stop()
        other.close()


def test_a_failed_run_is_counted_and_never_raises(engine: Engine) -> None:
    engine.retention.set("working", max_age="2d", actor="test")
    scheduler = RetentionScheduler(engine, timedelta(hours=1))
    engine.settings.memory_dir.mkdir(parents=True, exist_ok=True)
    (engine.settings.memory_dir / "CURRENT").write_text("not json")
    assert scheduler.run_once() is False
    assert scheduler.failures == 1
    [row] = [r for r in recent_operations(engine.db, kind="retention") if r["layer"] is None]
    assert row["status"] == "failure" and "CURRENT" in str(row["detail"])
