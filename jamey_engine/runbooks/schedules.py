"""Runbook schedules: a runbook run on a cron expression in a time zone, by the service.

A schedule is one row of ``runbook_schedules``. Its ``next_run_at`` is the next slot of its cron
expression (5 fields, minute precision) in its time zone, stored in UTC; DST is the time zone's
business (croniter walks local time, so ``30 2 * * *`` in Europe/Paris runs at 03:00 on the day
02:30 does not exist). The service's one schedule loop (``service/scheduler.py``, behind a lease)
calls :func:`run_due`: every schedule whose slot has come is *claimed* (its ``next_run_at``
moved past now in one conditional UPDATE, so two claimers never both win) and started with
actor ``schedule``. A schedule whose slots were missed while the service was down is due once,
and its next slot is the first one after now: it runs once, not once per missed slot.

A schedule that changes data runs through the plan contract (``runbooks/planned.py``): each run
plans, and applies its own plan only when no approval is required (the schedule, added by a key
with the runbook's scope, is the confirmation; the run is told which schedule started it by the
engine, never by a parameter a caller can set). Where ``JAMEY_APPROVALS`` lists the action, the
plan waits in ``pending_approval`` like any other and the schedule's ``last_status`` says
``pending_approval``. Only runbooks over a plan action may change data on a schedule; any other
is refused with a one-line InvalidInput.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from jamey_engine.durations import as_utc, utcnow
from jamey_engine.errors import InvalidInput, NotFound
from jamey_engine.keys.scopes import require_scope
from jamey_engine.models import RunbookRun, RunbookSchedule
from jamey_engine.runbooks.catalog import validate_parameters

if TYPE_CHECKING:
    from jamey_engine.db import Database
    from jamey_engine.engine import Engine

log = logging.getLogger(__name__)

ACTOR = "schedule"
PREVIEW_COUNT = 5
# The last statuses that count as a failed scheduled run (JameyRunbookFailed): a runner whose
# process died is as failed as one whose cell raised.
FAILED = ("failed", "interrupted")
# Each run is a process and a kernel: a burst of due schedules must not start them all at once.
MAX_ACTIVE_SCHEDULED_RUNS = 2
_TABLE = cast(sa.Table, RunbookSchedule.__table__)
_RUNS = cast(sa.Table, RunbookRun.__table__)


@dataclass(frozen=True)
class Schedule:
    """A schedule as every front door sees it. ``last_status`` is its last run's status now
    (read from the run's record, so a finished run shows without anyone updating the schedule)."""

    id: int
    runbook: str
    cron: str
    timezone: str
    parameters: dict[str, Any]
    next_run_at: datetime | None
    last_run_id: str | None
    last_status: str | None
    last_success_at: datetime | None
    paused: bool
    active_since: datetime
    created_by: str
    created_at: datetime

    @property
    def period(self) -> timedelta:
        """The gap between its next two slots after now (a day for a daily schedule).

        /metrics asks this of every schedule at every scrape, and walking a cron expression costs
        up to milliseconds (hundreds of schedules made a scrape take seconds), so the walk is
        memoised on a moment that names the same two slots: the stored ``next_run_at`` while it
        is ahead (the slots from it on), else the current minute (cron slots are whole minutes,
        so every moment within a minute has the same slots strictly after it)."""
        now = utcnow()
        upcoming = self.next_run_at
        if upcoming is not None and upcoming > now:
            after = upcoming - timedelta(microseconds=1)
        else:
            after = now.replace(second=0, microsecond=0)
        first, second = _next_two(self.cron, self.timezone, after)
        return second - first

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: the fields ``jamey runbook schedule list --json`` and the API show."""
        return {
            "id": self.id,
            "runbook": self.runbook,
            "cron": self.cron,
            "timezone": self.timezone,
            "parameters": self.parameters,
            "next_run_at": _iso(self.next_run_at),
            "last_run_id": self.last_run_id,
            "last_status": self.last_status,
            "last_success_at": _iso(self.last_success_at),
            "paused": self.paused,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- validation and next times ----------------------------------------------------------------


def check_cron(cron: str) -> str:
    """``cron`` stripped, when it is a 5-field cron expression (minute hour day month weekday,
    ``@daily`` and the like too). Raises InvalidInput naming the value otherwise."""
    from croniter import croniter

    text = " ".join(str(cron).split())
    fields = text.split(" ")
    if not text or (not text.startswith("@") and len(fields) != 5) or not croniter.is_valid(text):
        raise InvalidInput(
            f"cron {cron!r} is not a cron expression: use five fields, minute hour day month weekday "
            "(such as '0 6 * * *' for 06:00 every day)"
        )
    return text


def check_timezone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``UTC``, ``Europe/Paris``). Raises InvalidInput naming it."""
    try:
        if not name or name != name.strip() or ".." in name or name.startswith("/"):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"timezone {name!r} is not a known IANA time zone: use a name such as UTC or Europe/Paris"
        ) from None


def next_run_times(cron: str, timezone: str, after: datetime, count: int = PREVIEW_COUNT) -> list[datetime]:
    """The ``count`` slots of ``cron`` in ``timezone`` strictly after ``after``, in UTC.
    Raises InvalidInput for a bad expression or time zone, or one that never runs."""
    from croniter import CroniterError, croniter

    zone = check_timezone(timezone)
    expression = check_cron(cron)
    walker = croniter(expression, after.astimezone(zone))
    try:
        return [walker.get_next(datetime).astimezone(after.tzinfo or zone) for _ in range(count)]
    except CroniterError:
        raise InvalidInput(f"cron {cron!r} never runs (no such date, such as February 31)") from None


@functools.lru_cache(maxsize=4096)
def _next_two(cron: str, timezone: str, after: datetime) -> tuple[datetime, datetime]:
    first, second = next_run_times(cron, timezone, after, 2)
    return first, second


# --- records ------------------------------------------------------------------------------------


def _select() -> sa.Select[Any]:
    return sa.select(
        _TABLE,
        _RUNS.c.status.label("run_status"),
        _RUNS.c.finished_at.label("run_finished"),
        _RUNS.c.summary.label("run_summary"),
    ).join(_RUNS, _RUNS.c.id == _TABLE.c.last_run_id, isouter=True)


def _plan_waiting(summary: str | None) -> bool:
    """True when a run's summary says its plan waits for a second key's approval."""
    if not summary or "pending_approval" not in summary:
        return False
    try:
        found = json.loads(summary)
    except ValueError:
        return False
    return isinstance(found, dict) and found.get("plan_status") == "pending_approval"


def _record(row: Any) -> Schedule:
    status = row.run_status or row.last_status
    if status == "succeeded" and _plan_waiting(row.run_summary):
        status = "pending_approval"  # it planned; the change waits for an approval
    last_success = row.last_success_at
    if row.run_status == "succeeded" and row.run_finished is not None:
        last_success = max(last_success, row.run_finished) if last_success else row.run_finished
    return Schedule(
        id=row.id,
        runbook=row.runbook,
        cron=row.cron,
        timezone=row.timezone,
        parameters=json.loads(row.parameters or "{}"),
        next_run_at=_utc(row.next_run_at),
        last_run_id=row.last_run_id,
        last_status=status,
        last_success_at=_utc(last_success),
        paused=bool(row.paused),
        active_since=_utc(row.active_since) or utcnow(),
        created_by=row.created_by,
        created_at=_utc(row.created_at) or utcnow(),
    )


def _utc(value: datetime | str | None) -> datetime | None:
    """A stored moment as aware UTC (SQLite hands back naive datetimes or, via raw SQL, text)."""
    return as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def list_schedules(db: Database) -> list[Schedule]:
    """Every schedule, by id."""
    with db.connect() as conn:
        return [_record(row) for row in conn.execute(_select().order_by(_TABLE.c.id)).all()]


def get_schedule(db: Database, schedule_id: int) -> Schedule:
    """One schedule. Raises NotFound naming the id."""
    with db.connect() as conn:
        row = conn.execute(_select().where(_TABLE.c.id == int(schedule_id))).first()
    if row is None:
        raise NotFound(f"runbook schedule {schedule_id} does not exist (jamey runbook schedule list)")
    return _record(row)


def schedule_of_run(db: Database, run_id: str) -> int | None:
    """The id of the schedule that started run ``run_id`` (None when none did)."""
    with db.connect() as conn:
        found = conn.execute(sa.select(_TABLE.c.id).where(_TABLE.c.last_run_id == run_id)).scalar()
    return int(found) if found is not None else None


def add_schedule(
    engine: Engine,
    runbook: str,
    cron: str,
    *,
    timezone: str = "UTC",
    parameters: Mapping[str, Any] | None = None,
    created_by: str,
    paused: bool = False,
    scopes: Iterable[str] | None = None,
) -> Schedule:
    """Record a schedule of ``runbook`` on ``cron`` in ``timezone`` with ``parameters``.

    Raises NotFound for an unknown runbook (naming the ones there are), InvalidInput naming the
    field and value for a bad cron expression, an unknown time zone, an unknown parameter or a
    value of the wrong type, parameters that would change data in a runbook over no plan action,
    or a ``plan_id`` (a plan is applied once); given the author's key ``scopes``, Forbidden
    unless they grant the runbook's scope (``Runbook.scope_for``). Nothing is recorded then.
    """
    from jamey_engine.runbooks.launch import runbook as find

    chosen = find(engine, runbook)
    expression = check_cron(cron)
    next_run_times(expression, timezone, utcnow(), 1)  # a known zone, and it runs some day
    values = validate_parameters(chosen, parameters or {})
    if scopes is not None:  # a schedule runs with the scope its runbook needs: its author must hold it
        require_scope(created_by, tuple(scopes), chosen.scope_for(values))
    if chosen.changes_data(values) and chosen.plan_action is None:
        given = ", ".join(f"{name}={value!r}" for name, value in values.items()) or "its defaults"
        raise InvalidInput(
            f"parameters of runbook {chosen.name} ({given}) would change data: a schedule changes data "
            "only through a plan action's runbook (set dry_run true)"
        )
    if values.get("plan_id"):
        raise InvalidInput(
            f"parameter plan_id {values['plan_id']!r} cannot be scheduled: a plan is applied once; "
            "a scheduled run plans anew each time"
        )
    now = utcnow()
    row = RunbookSchedule(
        runbook=chosen.name,
        cron=expression,
        timezone=timezone,
        parameters=json.dumps(values, sort_keys=True),
        next_run_at=None if paused else next_run_times(expression, timezone, now, 1)[0],
        paused=paused,
        active_since=now,
        created_by=(created_by or "unknown")[:100],
        created_at=now,
    )
    with engine.db.session() as session:
        session.add(row)
        session.flush()
        new_id = row.id
    return get_schedule(engine.db, new_id)


def pause_schedule(db: Database, schedule_id: int) -> Schedule:
    """Stop a schedule from starting runs (a run already started goes on). Raises NotFound."""
    get_schedule(db, schedule_id)
    with db.begin() as conn:
        conn.execute(_TABLE.update().where(_TABLE.c.id == schedule_id).values(paused=True, next_run_at=None))
    return get_schedule(db, schedule_id)


def resume_schedule(db: Database, schedule_id: int) -> Schedule:
    """Start a paused schedule again from its next slot after now (slots missed while paused do
    not run). Resuming an active schedule changes nothing. Raises NotFound."""
    current = get_schedule(db, schedule_id)
    if not current.paused:
        return current
    now = utcnow()
    due = next_run_times(current.cron, current.timezone, now, 1)[0]
    with db.begin() as conn:
        conn.execute(
            _TABLE.update()
            .where(_TABLE.c.id == schedule_id)
            .values(paused=False, next_run_at=due, active_since=now)
        )
    return get_schedule(db, schedule_id)


def remove_schedule(db: Database, schedule_id: int) -> Schedule:
    """Delete a schedule (its runs stay in the history); returns it as it was. Raises NotFound."""
    current = get_schedule(db, schedule_id)
    with db.begin() as conn:
        conn.execute(_TABLE.delete().where(_TABLE.c.id == schedule_id))
    return current


# --- running ------------------------------------------------------------------------------------


def due_schedules(db: Database, now: datetime | None = None) -> list[Schedule]:
    """The active schedules whose next slot is at or before ``now`` (default: the clock)."""
    moment = now or utcnow()
    with db.connect() as conn:
        rows = conn.execute(
            _select()
            .where(_TABLE.c.paused.is_(False), _TABLE.c.next_run_at <= moment)
            .order_by(_TABLE.c.next_run_at)
        ).all()
    return [_record(row) for row in rows]


def next_due_at(db: Database) -> datetime | None:
    """The earliest next slot of any active schedule (None when there is none)."""
    with db.connect() as conn:
        found = conn.execute(
            sa.select(sa.func.min(_TABLE.c.next_run_at)).where(_TABLE.c.paused.is_(False))
        ).scalar()
    return _utc(found)


def claim(db: Database, schedule: Schedule, now: datetime) -> bool:
    """Move ``schedule``'s next slot to the first one after ``now`` if nobody else has; True
    when this caller won the slot (and so must start its run). Slots missed in between are
    skipped: a schedule runs once however many slots it missed."""
    following = next_run_times(schedule.cron, schedule.timezone, now, 1)[0]
    values: dict[str, Any] = {"next_run_at": following}
    if schedule.last_status in ("succeeded", "pending_approval"):  # keep it before last_run_id moves on
        values["last_success_at"] = schedule.last_success_at
    with db.begin() as conn:
        done = conn.execute(
            _TABLE.update()
            .where(
                _TABLE.c.id == schedule.id,
                _TABLE.c.paused.is_(False),
                _TABLE.c.next_run_at == schedule.next_run_at,
            )
            .values(**values)
        )
    return done.rowcount == 1


def run_schedule(engine: Engine, schedule: Schedule) -> str | None:
    """Start one run of ``schedule`` (actor ``schedule``) and record it as its last run; the run
    id, or None when it could not start (the failure is recorded as its last status). Never raises."""
    from jamey_engine.runbooks.launch import start_run

    try:
        record = start_run(
            engine,
            schedule.runbook,
            schedule.parameters,
            actor=ACTOR,
            runner_parameters={"run_schedule": schedule.id},
        )
        run_id: str | None = record.id
        status = record.status
    except Exception as err:
        log.error("runbook schedule %s (%s) could not start: %s", schedule.id, schedule.runbook, err)
        run_id, status = None, "failed"
    with engine.db.begin() as conn:
        conn.execute(
            _TABLE.update().where(_TABLE.c.id == schedule.id).values(last_run_id=run_id, last_status=status)
        )
    return run_id


def run_due(engine: Engine, now: datetime | None = None) -> list[str]:
    """Claim and start every due schedule, at most MAX_ACTIVE_SCHEDULED_RUNS scheduled runs at a
    time (the rest stay due and start as runs finish); the ids of the runs started. Never raises
    for one schedule's failure (it is logged and recorded)."""
    from jamey_engine.runbooks.runs import list_runs

    moment = now or utcnow()
    started: list[str] = []
    active = sum(1 for run in list_runs(engine.db, actor=ACTOR, limit=1000) if run.active)
    for schedule in due_schedules(engine.db, moment):
        if active + len(started) >= MAX_ACTIVE_SCHEDULED_RUNS:
            log.warning("%d scheduled runs are active: due schedules wait for one to finish", active)
            break
        try:
            won = claim(engine.db, schedule, moment)
        except Exception as err:
            log.error("runbook schedule %s could not be claimed: %s", schedule.id, err)
            continue
        if won and schedule.last_status in ("queued", "running"):
            # A run still going when its next slot comes: skip the slot rather than pile up.
            log.warning(
                "runbook schedule %s: run %s still active, slot skipped", schedule.id, schedule.last_run_id
            )
        elif won:
            run_id = run_schedule(engine, schedule)
            if run_id is not None:
                started.append(run_id)
    return started
