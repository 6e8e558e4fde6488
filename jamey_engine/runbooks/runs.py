"""Runbook run records: the database row every front door reads, and the run's folder.

A run is one row of ``runbook_runs`` (status ``queued`` -> ``running`` -> ``succeeded``,
``failed``, ``cancelled`` or ``interrupted``) and one folder ``$JAMEY_DATA_DIR/runbooks/runs/<id>/``
(owner-only) holding the executed notebook and its HTML. The row is the truth: a run whose
process is gone while the row still says queued or running is marked ``interrupted`` by the next
reader (:func:`reap`), so no run stays running forever.

Caps (``RunCaps``): a queued run with no ``pid`` is *waiting* for a slot; a run holds a slot from
the moment a process claims it (sets its pid) until it finishes. Claims are made under one lock
per database (an advisory transaction lock on PostgreSQL, a file lock beside an SQLite file), so
processes on every door never together exceed ``JAMEY_RUNS_MAX_ACTIVE`` runs, nor
``JAMEY_RUNS_MAX_PER_ACTOR`` of one actor; at most ``JAMEY_RUNS_MAX_QUEUED`` wait.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from jamey_engine.durations import utcnow
from jamey_engine.errors import Conflict, InvalidInput, NotFound, RateLimited
from jamey_engine.fsutil import process_alive, process_identity
from jamey_engine.models import RunbookRun

if TYPE_CHECKING:
    from jamey_engine.config import Settings
    from jamey_engine.db import Database

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")
NOTEBOOK_FILE = "notebook.ipynb"
HTML_FILE = "notebook.html"
_CHANGE = "change"
_TABLE = cast(sa.Table, RunbookRun.__table__)
#: The form of every run id (``new_run_id``): nothing else names a folder.
RUN_ID_PATTERN = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRecord:
    """A run as every front door sees it. ``cell_index`` counts code cells from 1."""

    id: str
    runbook: str
    parameters: dict[str, Any]
    actor: str
    status: str
    changes_data: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    pid: int | None
    pid_identity: str | None
    host: str
    cell_index: int | None
    cell_count: int | None
    cell_heading: str | None
    error_cell: int | None
    error: str | None
    summary: dict[str, Any] | None
    files_removed: bool

    @property
    def active(self) -> bool:
        """True while queued or running."""
        return self.status in ACTIVE

    @property
    def waiting(self) -> bool:
        """True while queued behind the caps: no process has claimed it yet."""
        return self.status == "queued" and self.pid is None

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from start to end (to now while running); None before it started."""
        if self.started_at is None:
            return None
        end = self.finished_at or utcnow()
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def progress_text(self) -> str:
        """``cell 4 of 11: Plan`` (or the status before the first cell)."""
        if self.cell_index is None or self.cell_count is None:
            return self.status
        heading = f": {self.cell_heading}" if self.cell_heading else ""
        return f"cell {self.cell_index} of {self.cell_count}{heading}"

    def to_dict(self, settings: Settings | None = None) -> dict[str, Any]:
        """JSON-friendly: every field, the duration, and (given ``settings``) the files' paths."""
        data: dict[str, Any] = {
            "id": self.id,
            "runbook": self.runbook,
            "status": self.status,
            "actor": self.actor,
            "parameters": self.parameters,
            "changes_data": self.changes_data,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_seconds": self.duration_seconds,
            "cell": {"index": self.cell_index, "count": self.cell_count, "heading": self.cell_heading},
            "error_cell": self.error_cell,
            "error": self.error,
            "summary": self.summary,
        }
        if settings is not None:
            folder = run_dir(settings, self.id)
            kept = not self.files_removed
            data["notebook"] = str(folder / NOTEBOOK_FILE) if kept else None
            data["html"] = str(folder / HTML_FILE) if kept else None
        return data


def _record(row: RunbookRun) -> RunRecord:
    return RunRecord(
        id=row.id,
        runbook=row.runbook,
        parameters=json.loads(row.parameters or "{}"),
        actor=row.actor,
        status=row.status,
        changes_data=bool(row.changes_data),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        pid=row.pid,
        pid_identity=row.pid_identity,
        host=row.host,
        cell_index=row.cell_index,
        cell_count=row.cell_count,
        cell_heading=row.cell_heading,
        error_cell=row.error_cell,
        error=row.error,
        summary=json.loads(row.summary) if row.summary else None,
        files_removed=bool(row.files_removed),
    )


def runs_dir(settings: Settings) -> Path:
    """``$JAMEY_DATA_DIR/runbooks/runs``."""
    return settings.data_dir / "runbooks" / "runs"


def check_run_id(run_id: str) -> str:
    """``run_id`` when it has the form ``new_run_id`` gives (``20261201T063000Z-1a2b3c``).

    Raises InvalidInput naming the id otherwise (``..``, a slash, anything that is not one).
    """
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise InvalidInput(f"run id {str(run_id)[:80]!r} is not a run id (like 20261201T063000Z-1a2b3c)")
    return run_id


def run_dir(settings: Settings, run_id: str) -> Path:
    """The folder of one run (not created here). Raises InvalidInput for an id not of the
    form ``new_run_id`` gives, before any path is built from it."""
    return runs_dir(settings) / check_run_id(run_id)


def make_run_dir(settings: Settings, run_id: str) -> Path:
    """Create the run's folder, owner-only (0700, like its parents this creates)."""
    folder = run_dir(settings, run_id)
    for path in (settings.data_dir / "runbooks", runs_dir(settings), folder):
        path.mkdir(mode=0o700, exist_ok=True, parents=True)
    os.chmod(folder, 0o700)
    return folder


def new_run_id() -> str:
    """``20261201T063000Z-1a2b3c``: sortable by time, unique."""
    return f"{utcnow():%Y%m%dT%H%M%S}Z-{secrets.token_hex(3)}"


def reap(db: Database) -> list[str]:
    """Mark ``interrupted`` every queued or running run of this host whose process is gone, and
    free its claim on the one change slot. Returns their ids. Every reader calls this first."""
    host = socket.gethostname()
    table = _TABLE
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.id, table.c.pid, table.c.pid_identity).where(
                table.c.status.in_(ACTIVE), table.c.host == host
            )
        ).all()
    # A pid alone may now belong to an unrelated process (reused after a crash or a reboot).
    # A waiting run (no pid: queued behind the caps) has no process yet; it is not dead.
    dead = [row.id for row in rows if row.pid is not None and not process_alive(row.pid, row.pid_identity)]
    if not dead:
        return []
    with db.begin() as conn:
        conn.execute(
            table.update()
            .where(table.c.id.in_(dead), table.c.status.in_(ACTIVE))
            .values(
                status="interrupted",
                finished_at=utcnow(),
                change_slot=None,
                error="the run's process ended without finishing the run (killed or crashed)",
            )
        )
    return dead


@dataclass(frozen=True)
class RunCaps:
    """How many runs may hold a slot at once (``active``), of one actor (``per_actor``), and how
    many may wait for one (``queued``)."""

    active: int
    per_actor: int
    queued: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RunCaps:
        """``JAMEY_RUNS_MAX_ACTIVE``, ``JAMEY_RUNS_MAX_PER_ACTOR`` and ``JAMEY_RUNS_MAX_QUEUED``."""
        return cls(settings.runs_max_active, settings.runs_max_per_actor, settings.runs_max_queued)


#: What a refused run tells its caller to wait before trying again (a run takes seconds to minutes).
QUEUE_FULL_RETRY_AFTER = 30
_PG_RUNS_LOCK = 0x4A414D4559_52  # "JAMEY" "R": the advisory lock every claim of a run slot takes
_process_lock = threading.Lock()  # an in-memory SQLite database: one process, so a thread lock


@contextlib.contextmanager
def _claim_lock(db: Database) -> Iterator[sa.Connection]:
    """A transaction that no other claim of a run slot overlaps, in any process: PostgreSQL's
    advisory transaction lock, or an exclusive file lock beside the SQLite file."""
    path = db.sqlite_path
    with contextlib.ExitStack() as stack:
        if db.dialect == "postgresql":
            conn = stack.enter_context(db.begin())
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_RUNS_LOCK)))
        else:
            if path is None:
                stack.enter_context(_process_lock)
            else:
                handle = stack.enter_context(open(path.with_name(path.name + ".runs-lock"), "a"))
                fcntl.flock(handle, fcntl.LOCK_EX)
                stack.callback(fcntl.flock, handle, fcntl.LOCK_UN)
            conn = stack.enter_context(db.begin())
        yield conn


def _slots_taken(conn: sa.Connection) -> tuple[int, Counter[str], int]:
    """Runs holding a slot (claimed or running), those per actor, and runs waiting for one."""
    table = _TABLE
    rows = conn.execute(sa.select(table.c.actor, table.c.pid).where(table.c.status.in_(ACTIVE))).all()
    holding = [row.actor for row in rows if row.pid is not None]
    return len(holding), Counter(holding), sum(1 for row in rows if row.pid is None)


def create_run(
    db: Database,
    *,
    runbook: str,
    parameters: dict[str, Any],
    actor: str,
    changes_data: bool,
    caps: RunCaps | None = None,
) -> RunRecord:
    """Record a new ``queued`` run. Under ``caps`` it is claimed by this process (its pid until
    the runner takes over) when a slot is free for it, and otherwise left waiting (``waiting``:
    no pid) for whoever frees a slot to start it (:func:`claim_waiting`); without ``caps`` it is
    always claimed.

    Raises Conflict naming the running run when ``changes_data`` and another run that changes
    data is queued or running (dead runs are reaped first, so a crash never blocks for good), and
    RateLimited (with ``retry_after``) when it would have to wait and ``caps.queued`` runs
    already wait: nothing is recorded then.
    """
    reap(db)
    values: dict[str, Any] = {
        "id": new_run_id(),
        "runbook": runbook,
        "parameters": json.dumps(parameters, sort_keys=True),
        "actor": (actor or "unknown")[:100],
        "status": "queued",
        "changes_data": changes_data,
        "change_slot": _CHANGE if changes_data else None,
        "created_at": utcnow(),
        "host": socket.gethostname()[:255],
        "pid": os.getpid(),
        "pid_identity": process_identity(os.getpid()),
        "files_removed": False,
    }
    try:
        with _claim_lock(db) as conn:
            if caps is not None:
                holding, per_actor, waiting = _slots_taken(conn)
                if holding >= caps.active or per_actor[values["actor"]] >= caps.per_actor:
                    if waiting >= caps.queued:
                        raise RateLimited(
                            f"too many runbook runs: {holding} running ({per_actor[values['actor']]} of "
                            f"them by {values['actor']}) and {waiting} queued, the most that may wait "
                            f"(JAMEY_RUNS_MAX_QUEUED={caps.queued}); try again when runs finish",
                            retry_after=QUEUE_FULL_RETRY_AFTER,
                            scope="runs",
                        )
                    values["pid"] = values["pid_identity"] = None
            conn.execute(_TABLE.insert().values(**values))
    except sa.exc.IntegrityError:
        holder = _change_holder(db)
        what = (
            f"run {holder.id} of {holder.runbook} by {holder.actor} ({holder.status})"
            if holder
            else "another run"
        )
        raise Conflict(
            f"{what} is changing data; one data-changing run at a time. Wait for it or cancel it "
            "(dry runs and analyses may run meanwhile)."
        ) from None
    return get_run(db, values["id"], reap_first=False)


def claim_waiting(db: Database, caps: RunCaps) -> list[str]:
    """Claim for this process the oldest waiting runs that fit under ``caps`` (race-free across
    processes: under the claim lock); the ids claimed, whose runners the caller must start."""
    reap(db)
    table = _TABLE
    claimed: list[str] = []
    with _claim_lock(db) as conn:
        holding, per_actor, waiting = _slots_taken(conn)
        if not waiting or holding >= caps.active:
            return []
        rows = conn.execute(
            sa.select(table.c.id, table.c.actor)
            .where(table.c.status == "queued", table.c.pid.is_(None))
            .order_by(table.c.created_at, table.c.id)
        ).all()
        for row in rows:
            if holding >= caps.active:
                break
            if per_actor[row.actor] >= caps.per_actor:
                continue
            done = conn.execute(
                table.update()
                .where(table.c.id == row.id, table.c.status == "queued", table.c.pid.is_(None))
                .values(
                    pid=os.getpid(),
                    pid_identity=process_identity(os.getpid()),
                    host=socket.gethostname()[:255],
                )
            )
            if done.rowcount:
                holding += 1
                per_actor[row.actor] += 1
                claimed.append(row.id)
    return claimed


def _change_holder(db: Database) -> RunRecord | None:
    with db.session() as session:
        row = session.scalars(sa.select(RunbookRun).where(RunbookRun.change_slot == _CHANGE)).first()
        return _record(row) if row else None


def get_run(db: Database, run_id: str, *, reap_first: bool = True) -> RunRecord:
    """The run ``run_id``. Raises NotFound naming it."""
    if reap_first:
        reap(db)
    with db.session() as session:
        row = session.get(RunbookRun, str(run_id))
        if row is None:
            raise NotFound(f"runbook run {run_id!r} does not exist")
        return _record(row)


def list_runs(
    db: Database,
    *,
    runbook: str | None = None,
    status: str | None = None,
    actor: str | None = None,
    limit: int = 50,
) -> list[RunRecord]:
    """The newest ``limit`` runs first, optionally of one runbook, status and actor."""
    reap(db)
    query = sa.select(RunbookRun).order_by(RunbookRun.created_at.desc(), RunbookRun.id.desc())
    if runbook:
        query = query.where(RunbookRun.runbook == runbook)
    if status:
        query = query.where(RunbookRun.status == status)
    if actor:
        query = query.where(RunbookRun.actor == actor)
    with db.session() as session:
        return [_record(row) for row in session.scalars(query.limit(max(1, min(int(limit), 10_000))))]


def update_run(db: Database, run_id: str, **values: Any) -> None:
    """Set columns of a run (the runner's progress and outcome). A finished status frees the
    change slot. A new ``pid`` records that process's identity with it, so a later reader never
    takes an unrelated process that reuses the pid for the run's."""
    if values.get("pid") is not None and "pid_identity" not in values:
        values["pid_identity"] = process_identity(int(values["pid"]))
    if values.get("status") in STATUSES and values["status"] not in ACTIVE:
        values["change_slot"] = None
    if "summary" in values and values["summary"] is not None:
        values["summary"] = json.dumps(values["summary"], default=str)
    with db.begin() as conn:
        conn.execute(_TABLE.update().where(_TABLE.c.id == run_id).values(**values))


def finish_if_active(db: Database, run_id: str, status: str, **values: Any) -> bool:
    """Move an active run to ``status`` (a final one); False when it had already finished."""
    table = _TABLE
    if values.get("summary") is not None:
        values["summary"] = json.dumps(values["summary"], default=str)
    with db.begin() as conn:
        result = conn.execute(
            table.update()
            .where(table.c.id == run_id, table.c.status.in_(ACTIVE))
            .values(status=status, change_slot=None, finished_at=utcnow(), **values)
        )
    return bool(result.rowcount)


def request_cancel(db: Database, run_id: str) -> RunRecord:
    """Record that ``run_id`` should stop. Raises NotFound, or Conflict when it already finished."""
    run = get_run(db, run_id)
    if not run.active:
        raise Conflict(f"runbook run {run_id} already finished ({run.status}); there is nothing to cancel")
    update_run(db, run_id, cancel_requested_at=utcnow())
    return run


def cancel_requested(db: Database, run_id: str) -> bool:
    """True once someone asked ``run_id`` to stop."""
    table = _TABLE
    with db.connect() as conn:
        value = conn.execute(sa.select(table.c.cancel_requested_at).where(table.c.id == run_id)).scalar()
    return value is not None


# The executed notebooks of runs that changed data are the record of what was done: however many
# cheap runs follow, those of the last week are never evicted.
KEEP_CHANGES_FOR = timedelta(days=7)


def apply_retention(db: Database, settings: Settings) -> list[str]:
    """Remove the folders of all but the newest ``settings.runbook_keep`` runs (never of an
    active run, nor of a run that changed data in the last 7 days); their rows stay, marked
    ``files_removed``. Returns the ids whose files went."""
    table = _TABLE
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.id, table.c.status, table.c.changes_data, table.c.created_at)
            .where(table.c.files_removed.is_(False))
            .order_by(table.c.created_at.desc(), table.c.id.desc())
        ).all()
    since = utcnow() - KEEP_CHANGES_FOR
    old = []
    for row in rows[settings.runbook_keep :]:
        if row.status in ACTIVE or (row.changes_data and row.created_at > since):
            continue
        try:
            folder = run_dir(settings, row.id)
        except InvalidInput as err:  # a row no runner made: no folder of ours to remove
            log.warning("runbook retention skips a row: %s", err.message)
            continue
        shutil.rmtree(folder, ignore_errors=True)
        old.append(row.id)
    if old:
        with db.begin() as conn:
            conn.execute(table.update().where(table.c.id.in_(old)).values(files_removed=True))
    return old


@dataclass(frozen=True)
class RunStats:
    """What the metrics need: runs per (runbook, status), each runbook's last finished run's
    duration in seconds, and the runs holding a slot under the caps (``active``) and waiting
    for one (``waiting``)."""

    counts: dict[tuple[str, str], int]
    last_duration_seconds: dict[str, float]
    active: int = 0
    waiting: int = 0


def run_stats(db: Database, *, reap_dead: bool = True) -> RunStats:
    """Counts and durations over every run (dead runs reaped first, unless ``reap_dead`` is
    False: a reader that must write nothing, as a scrape)."""
    if reap_dead:
        reap(db)
    table = _TABLE
    counts: dict[tuple[str, str], int] = {}
    durations: dict[str, float] = {}
    with db.connect() as conn:
        for runbook, status, number in conn.execute(
            sa.select(table.c.runbook, table.c.status, sa.func.count()).group_by(
                table.c.runbook, table.c.status
            )
        ):
            counts[(runbook, status)] = int(number)
        latest = (
            sa.select(table.c.runbook, sa.func.max(table.c.finished_at).label("at"))
            .where(table.c.finished_at.is_not(None), table.c.started_at.is_not(None))
            .group_by(table.c.runbook)
            .subquery()
        )
        for row in conn.execute(
            sa.select(table.c.runbook, table.c.started_at, table.c.finished_at).join(
                latest, sa.and_(table.c.runbook == latest.c.runbook, table.c.finished_at == latest.c.at)
            )
        ):
            durations[row.runbook] = max(0.0, (row.finished_at - row.started_at).total_seconds())
        active, _, waiting = _slots_taken(conn)
    return RunStats(counts, durations, active, waiting)
