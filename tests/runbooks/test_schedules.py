"""Runbook schedules in the engine: validation, next times across DST, due slots, pause/resume,
and a due schedule starting a real run (actor ``schedule``) on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from helpers import make_settings
from notebook_factory import make_test_notebooks
from test_events import MQTT_URL, Subscriber

from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.errors import InvalidInput, NotFound
from jamey_engine.runbooks import runs, schedules

DEADLINE = 180.0  # a loaded 2-core machine starts a kernel slowly
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def nb_dir(tmp_path: Path) -> Path:
    return make_test_notebooks(tmp_path / "notebooks")


@pytest.fixture
def sched_engine(data_dir: Path, nb_dir: Path, database_url: str) -> Iterator[Engine]:
    """An engine on SQLite and on PostgreSQL with the test notebooks as its catalog."""
    engine = Engine(make_settings(data_dir, JAMEY_NOTEBOOKS_DIR=str(nb_dir), JAMEY_DATABASE_URL=database_url))
    yield engine
    engine.close()


def test_the_shipped_schedules_exist_paused(sched_engine: Engine) -> None:
    shipped = {s.runbook: s for s in schedules.list_schedules(sched_engine.db)}
    assert set(shipped) == {"memory_growth", "dedupe_memories"}
    assert all(s.paused and s.next_run_at is None for s in shipped.values())
    assert shipped["dedupe_memories"].parameters == {"dry_run": True}
    daily, weekly = shipped["memory_growth"].cron, shipped["dedupe_memories"].cron
    assert schedules.next_run_times(daily, "UTC", utcnow(), 2)[1] - schedules.next_run_times(
        daily, "UTC", utcnow(), 1
    )[0] == timedelta(days=1)
    first, second = schedules.next_run_times(weekly, "UTC", utcnow(), 2)
    assert second - first == timedelta(weeks=1)


def test_daily_slots_keep_their_local_hour_across_both_dst_changes() -> None:
    # Paris springs forward on 2027-03-28 (02:00 -> 03:00) and falls back on 2026-10-25.
    spring = schedules.next_run_times("30 8 * * *", "Europe/Paris", datetime(2027, 3, 26, 12, tzinfo=UTC), 3)
    assert [at.astimezone(PARIS).hour for at in spring] == [8, 8, 8]
    assert [at.hour for at in spring] == [7, 6, 6]  # UTC+1 on the 27th, UTC+2 from the 28th
    autumn = schedules.next_run_times("30 8 * * *", "Europe/Paris", datetime(2026, 10, 23, 12, tzinfo=UTC), 2)
    assert [at.hour for at in autumn] == [6, 7]
    # 02:30 does not exist on the spring day: that slot runs at the first time that does (03:00).
    gap = schedules.next_run_times("30 2 * * *", "Europe/Paris", datetime(2027, 3, 27, 12, tzinfo=UTC), 2)
    assert gap[0].astimezone(PARIS).date() == datetime(2027, 3, 28).date()
    assert gap[0].astimezone(PARIS).hour == 3
    assert gap[1].astimezone(PARIS).hour == 2
    assert all(at.tzinfo is not None and at.utcoffset() == timedelta(0) for at in gap)


@pytest.mark.parametrize(
    ("field", "kwargs", "error"),
    [
        ("cron", {"cron": "61 * * * *"}, "cron '61 * * * *' is not a cron expression"),
        ("cron", {"cron": "* * * *"}, "cron '* * * *' is not a cron expression"),
        ("cron", {"cron": "0 0 * * * *"}, "five fields"),
        ("cron", {"cron": "0 0 31 2 *"}, "cron '0 0 31 2 *' never runs"),
        ("timezone", {"timezone": "Mars/Olympus"}, "timezone 'Mars/Olympus' is not a known IANA time zone"),
        ("timezone", {"timezone": "../etc/passwd"}, "timezone '../etc/passwd'"),
        ("parameter", {"parameters": {"nope": 1}}, "has no parameter 'nope'"),
        ("parameter", {"parameters": {"repeat": "many"}}, "parameter repeat 'many' must be a number"),
    ],
)
def test_bad_input_names_the_field_and_records_nothing(
    sched_engine: Engine, field: str, kwargs: dict[str, object], error: str
) -> None:
    before = schedules.list_schedules(sched_engine.db)
    arguments: dict[str, object] = {"cron": "0 6 * * *", **kwargs}
    cron = str(arguments.pop("cron"))
    with pytest.raises(InvalidInput, match=error.replace("*", r"\*").replace("(", r"\(")):
        schedules.add_schedule(sched_engine, "ok", cron, created_by="test", **arguments)  # type: ignore[arg-type]
    assert schedules.list_schedules(sched_engine.db) == before


def test_an_unknown_runbook_is_not_found(sched_engine: Engine) -> None:
    with pytest.raises(NotFound, match="runbook 'nope' does not exist"):
        schedules.add_schedule(sched_engine, "nope", "0 6 * * *", created_by="test")


def test_a_schedule_that_would_change_data_outside_a_plan_action_is_refused(sched_engine: Engine) -> None:
    with pytest.raises(InvalidInput, match=r"slow_change \(dry_run=False\) would change data"):
        schedules.add_schedule(
            sched_engine, "slow_change", "0 6 * * *", parameters={"dry_run": "false"}, created_by="test"
        )
    dry = schedules.add_schedule(
        sched_engine, "slow_change", "0 6 * * *", parameters={"dry_run": "true"}, created_by="test"
    )
    assert dry.parameters == {"dry_run": True}


def test_a_missed_slot_is_due_once_and_its_next_slot_is_after_now(sched_engine: Engine) -> None:
    with time_machine.travel(datetime(2026, 12, 6, 10, 0, 30, tzinfo=UTC), tick=False) as clock:
        added = schedules.add_schedule(sched_engine, "ok", "*/10 * * * *", created_by="test")
        start = utcnow()
        assert added.next_run_at == start.replace(minute=10, second=0)
        assert schedules.due_schedules(sched_engine.db) == []
        clock.shift(timedelta(minutes=45))  # the service was down over four slots
        now = utcnow()
        due = schedules.due_schedules(sched_engine.db)
        assert [s.id for s in due] == [added.id]
        assert schedules.claim(sched_engine.db, due[0], now)
        assert not schedules.claim(sched_engine.db, due[0], now)  # a second claimer loses the slot
        assert schedules.due_schedules(sched_engine.db) == []
        assert schedules.get_schedule(sched_engine.db, added.id).next_run_at == now.replace(
            minute=50, second=0
        )


def test_pause_stops_a_schedule_and_resume_skips_the_slots_it_missed(sched_engine: Engine) -> None:
    with time_machine.travel(datetime(2026, 12, 6, 10, 0, 30, tzinfo=UTC), tick=False) as clock:
        added = schedules.add_schedule(sched_engine, "ok", "0 * * * *", created_by="test")
        paused = schedules.pause_schedule(sched_engine.db, added.id)
        assert paused.paused and paused.next_run_at is None
        clock.shift(timedelta(hours=3))
        assert schedules.due_schedules(sched_engine.db) == []
        resumed = schedules.resume_schedule(sched_engine.db, added.id)
        now = utcnow()
        assert not resumed.paused
        assert resumed.next_run_at == (now + timedelta(hours=1)).replace(minute=0, second=0)
        assert resumed.active_since == now
        assert schedules.due_schedules(sched_engine.db) == []
        clock.shift(timedelta(hours=1))
        assert [s.id for s in schedules.due_schedules(sched_engine.db)] == [added.id]


def test_unknown_ids_are_not_found(sched_engine: Engine) -> None:
    for action in (schedules.pause_schedule, schedules.resume_schedule, schedules.remove_schedule):
        with pytest.raises(NotFound, match="runbook schedule 999 does not exist"):
            action(sched_engine.db, 999)


@pytest.mark.mqtt
def test_a_due_schedule_starts_one_run_as_schedule_and_records_its_outcome(
    data_dir: Path, nb_dir: Path, database_url: str
) -> None:
    subscriber = Subscriber(MQTT_URL)
    sched_engine = Engine(
        make_settings(
            data_dir,
            JAMEY_NOTEBOOKS_DIR=str(nb_dir),
            JAMEY_DATABASE_URL=database_url,
            JAMEY_MQTT_URL=MQTT_URL,
        )
    )
    try:
        _run_one_scheduled(sched_engine, subscriber)
    finally:
        subscriber.close()
        sched_engine.close()


def _run_one_scheduled(sched_engine: Engine, subscriber: Subscriber) -> None:
    added = schedules.add_schedule(sched_engine, "ok", "* * * * *", parameters={"repeat": 3}, created_by="t")
    moment = added.next_run_at
    assert moment is not None
    started = schedules.run_due(sched_engine, moment)
    assert len(started) == 1
    assert schedules.run_due(sched_engine, moment) == []  # the slot is taken: nothing more starts
    deadline = time.monotonic() + DEADLINE
    while runs.get_run(sched_engine.db, started[0]).active and time.monotonic() < deadline:
        time.sleep(0.2)
    run = runs.get_run(sched_engine.db, started[0])
    assert (run.actor, run.status, run.parameters) == ("schedule", "succeeded", {"repeat": 3})
    after = schedules.get_schedule(sched_engine.db, added.id)
    assert (after.last_run_id, after.last_status) == (run.id, "succeeded")
    assert after.last_success_at == run.finished_at
    assert schedules.schedule_of_run(sched_engine.db, run.id) == added.id
    # One MQTT event for the finished run, naming its schedule.
    events = []
    while time.monotonic() < deadline and not events:
        topic, event = subscriber.next(timeout=DEADLINE)
        if event.get("run") == run.id:
            events.append((topic, event))
    ((topic, event),) = events
    assert topic == "jamey/events/runbook"
    assert (event["status"], event["actor"], event["schedule"]) == ("succeeded", "schedule", added.id)


def _gauges(engine: Engine, name: str) -> dict[str, float]:
    """The samples of gauge ``name`` on this engine's /metrics, by schedule id."""
    from prometheus_client.parser import text_string_to_metric_families

    from jamey_engine.observability.metrics import build_metrics

    text = build_metrics(engine).exposition().decode()
    return {
        sample.labels["schedule"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_metrics_show_an_active_schedule_period_and_nothing_missed_while_paused(sched_engine: Engine) -> None:
    added = schedules.add_schedule(sched_engine, "ok", "0 * * * *", created_by="test")
    key = str(added.id)
    assert _gauges(sched_engine, "runbook_schedule_period_seconds")[key] == 3600.0
    since = _gauges(sched_engine, "runbook_schedule_active_since_timestamp_seconds")[key]
    assert since == pytest.approx(added.active_since.timestamp())
    assert key not in _gauges(sched_engine, "runbook_schedule_last_run_failed")  # never ran
    schedules.pause_schedule(sched_engine.db, added.id)
    assert key not in _gauges(sched_engine, "runbook_schedule_period_seconds")
    assert key not in _gauges(sched_engine, "runbook_schedule_active_since_timestamp_seconds")


def test_the_period_is_the_gap_between_the_next_two_slots_and_scrapes_reuse_it(
    sched_engine: Engine, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """/metrics asks every schedule's period at every scrape: a fuzz run's hundreds of schedules
    made one scrape take seconds. The walk is memoised, so a second scrape walks no cron, and the
    figure is still the gap between the next two slots (a month's length varies)."""
    frozen = time_machine.travel(utcnow(), tick=False)  # the slots compared are those of one moment
    frozen.start()
    request.addfinalizer(frozen.stop)
    crons = ["0 0 1 * *", "0 0 29 2 *", "30 6 * * 1-5", "*/7 * * * *"]
    added = [schedules.add_schedule(sched_engine, "ok", cron, created_by="test") for cron in crons]
    added += [
        schedules.add_schedule(sched_engine, "ok", f"{n % 60} {n % 24} * * *", created_by="test")
        for n in range(60)
    ]
    periods = _gauges(sched_engine, "runbook_schedule_period_seconds")
    for schedule in added:
        first, second = schedules.next_run_times(schedule.cron, schedule.timezone, utcnow(), 2)
        assert periods[str(schedule.id)] == (second - first).total_seconds(), schedule.cron
    walks: list[str] = []
    real = schedules.next_run_times

    def counted(cron: str, *args: object, **kwargs: object) -> object:
        walks.append(cron)
        return real(cron, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(schedules, "next_run_times", counted)
    assert _gauges(sched_engine, "runbook_schedule_period_seconds") == periods
    assert walks == []  # seen failing before the memo: 64 walks, one per schedule per scrape


def test_due_schedules_wait_while_the_cap_of_scheduled_runs_is_active(sched_engine: Engine) -> None:
    added = schedules.add_schedule(sched_engine, "ok", "* * * * *", created_by="test")
    for _ in range(schedules.MAX_ACTIVE_SCHEDULED_RUNS):  # queued runs owned by this live process
        runs.create_run(sched_engine.db, runbook="ok", parameters={}, actor="schedule", changes_data=False)
    moment = added.next_run_at
    assert moment is not None
    assert schedules.run_due(sched_engine, moment) == []
    assert [s.id for s in schedules.due_schedules(sched_engine.db, moment)] == [added.id]  # still due


# --- schedules that change data through the plan contract (the repository's notebooks) ----------


@pytest.fixture
def repo_engine(data_dir: Path, database_url: str) -> Iterator[Engine]:
    """An engine on SQLite and PostgreSQL whose catalog is the repository's notebooks/."""
    from jamey_engine.runbooks.links import REPO_NOTEBOOKS

    engine = Engine(
        make_settings(data_dir, JAMEY_NOTEBOOKS_DIR=str(REPO_NOTEBOOKS), JAMEY_DATABASE_URL=database_url)
    )
    yield engine
    engine.close()


def test_a_plan_runbook_may_change_data_on_a_schedule_but_never_with_a_plan_id(repo_engine: Engine) -> None:
    added = schedules.add_schedule(
        repo_engine, "take_backup", "0 3 * * *", parameters={"dry_run": "false"}, created_by="olga"
    )
    assert added.parameters == {"dry_run": False} and not added.paused
    with pytest.raises(InvalidInput, match=r"parameter plan_id 'plan-x' cannot be scheduled"):
        schedules.add_schedule(
            repo_engine, "prune_memories", "0 3 * * *", parameters={"plan_id": "plan-x"}, created_by="olga"
        )


def test_a_key_without_the_runbooks_scope_cannot_schedule_it(repo_engine: Engine) -> None:
    from jamey_engine.errors import Forbidden

    before = schedules.list_schedules(repo_engine.db)
    for name in ("restore_backup", "rotate_key"):
        with pytest.raises(Forbidden, match="lacks the scope 'admin'"):
            schedules.add_schedule(
                repo_engine, name, "0 3 * * *", created_by="olga-ops", scopes=("ops:write",)
            )
    assert schedules.list_schedules(repo_engine.db) == before
    allowed = schedules.add_schedule(
        repo_engine, "rotate_key", "0 3 * * *", created_by="ada", scopes=("admin",), paused=True
    )
    assert allowed.runbook == "rotate_key"


def test_a_run_whose_plan_waits_for_approval_shows_as_pending_approval(repo_engine: Engine) -> None:
    import json

    import sqlalchemy as sa

    from jamey_engine.models import RunbookRun, RunbookSchedule

    added = schedules.add_schedule(
        repo_engine, "take_backup", "0 3 * * *", parameters={"dry_run": False}, created_by="olga"
    )
    waiting = runs.create_run(
        repo_engine.db,
        runbook="take_backup",
        parameters={"dry_run": False},
        actor="schedule",
        changes_data=True,
    )
    summary = {
        "plan_id": "plan-1",
        "plan_status": "pending_approval",
        "outcome": "pending_approval",
        "error": None,
    }
    with repo_engine.db.begin() as conn:
        conn.execute(
            sa.update(RunbookRun.__table__)
            .where(RunbookRun.__table__.c.id == waiting.id)
            .values(status="succeeded", finished_at=utcnow(), summary=json.dumps(summary), change_slot=None)
        )
        conn.execute(
            sa.update(RunbookSchedule.__table__)
            .where(RunbookSchedule.__table__.c.id == added.id)
            .values(last_run_id=waiting.id, last_status="queued")
        )
    assert schedules.get_schedule(repo_engine.db, added.id).last_status == "pending_approval"
    applied = {**summary, "plan_status": "applied", "outcome": "applied"}
    with repo_engine.db.begin() as conn:
        conn.execute(
            sa.update(RunbookRun.__table__)
            .where(RunbookRun.__table__.c.id == waiting.id)
            .values(summary=json.dumps(applied))
        )
    assert schedules.get_schedule(repo_engine.db, added.id).last_status == "succeeded"
