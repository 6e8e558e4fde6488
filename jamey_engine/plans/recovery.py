"""An apply whose process died: the next reader settles its plan, after a restore's own recovery.

:func:`~jamey_engine.plans.applying.claim` records the applying process (host, pid and its
identity, so a reused pid is not taken for it). A plan still ``applying`` whose process is gone
on this host was killed mid-apply (SIGKILL, a crash, a reboot); :func:`reap`, which every
contract reader (:func:`get`, :func:`list_plans`, ``claim``) runs first, settles it:

* most actions: ``failed``, "apply interrupted: process N died"; whatever the engine's own
  step guarantees (a prune's or dedupe's generation switch is atomic) holds the data consistent;
* a restore: its journal's recovery (``vault/restore_journal.py``) runs first, and the plan ends
  on the side the restore ended on: ``applied`` when its commit had happened (rolled forward; the
  marker row of its commit is in the operation log), else ``failed`` (rolled back, nothing changed).
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from jamey_engine import oplog
from jamey_engine.durations import utcnow
from jamey_engine.fsutil import process_alive
from jamey_engine.models import Operation, Plan
from jamey_engine.plans import store

if TYPE_CHECKING:
    from jamey_engine.db import Database
    from jamey_engine.engine import Engine

_PLANS = cast(sa.Table, Plan.__table__)
_OPERATIONS = cast(sa.Table, Operation.__table__)
RECOVERY_ACTOR = "recovery"


def applier_values(pid: int, identity: str | None) -> dict[str, Any]:
    """The columns ``claim`` sets: the host, pid and identity of the process that applies."""
    return {"applier_host": socket.gethostname()[:255], "applier_pid": pid, "applier_pid_identity": identity}


def _dead_applies(db: Database) -> list[Any]:
    """Plans ``applying`` on this host whose applying process is gone."""
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(
                _PLANS.c.id,
                _PLANS.c.action,
                _PLANS.c.applier_pid,
                _PLANS.c.applier_pid_identity,
            ).where(
                _PLANS.c.status == "applying",
                _PLANS.c.applier_host == socket.gethostname()[:255],
                _PLANS.c.applier_pid.is_not(None),
            )
        ).all()
    return [row for row in rows if not process_alive(row.applier_pid, row.applier_pid_identity)]


def _restore_committed(db: Database, plan: store.PlanRecord) -> bool:
    """Whether the plan's restore passed its point of no return: the success row its commit wrote
    (``[restore <token>]`` after the backup id) by its applier, since the apply started."""
    backup_id = str(plan.summary.get("backup_id") or plan.parameters.get("backup_id") or "")
    if not backup_id or plan.started_at is None:
        return False
    query = (
        sa.select(sa.func.count())
        .select_from(_OPERATIONS)
        .where(
            _OPERATIONS.c.kind == "restore",
            _OPERATIONS.c.status == "success",
            _OPERATIONS.c.at >= plan.started_at,
            _OPERATIONS.c.detail.like(f"{backup_id}%[restore %]"),
        )
    )
    if plan.applied_by:
        query = query.where(_OPERATIONS.c.actor == plan.applied_by)
    with db.connect() as conn:
        return bool(conn.execute(query).scalar_one())


def _settle(engine: Engine, plan: store.PlanRecord, status: str, message: str, result: Any) -> bool:
    moved = store.transition(
        engine.db,
        plan.id,
        ("applying",),
        status,
        event=(status, RECOVERY_ACTOR, None, message),
        finished_at=utcnow(),
        error=None if status == "applied" else message,
        result=json.dumps(result, sort_keys=True, default=str) if result is not None else None,
        progress=None,
    )
    if moved:
        started = plan.started_at or utcnow()
        oplog.record(
            engine.db,
            engine.events,
            "plan",
            "success" if status == "applied" else "failure",
            max(0.0, (utcnow() - started).total_seconds()),
            detail=f"plan {plan.id} {plan.action}: applied by {plan.applied_by or '-'}: {message}",
            actor=plan.applied_by or RECOVERY_ACTOR,
        )
    return moved


def reap(engine: Engine) -> list[str]:
    """Settle every plan whose apply's process died on this host (see the module docstring);
    returns their ids. A restore plan waits while another process holds the restore lock (it
    recovers the journal itself; the next reader settles the plan)."""
    dead = _dead_applies(engine.db)
    if not dead:
        return []
    restore_recovered = True
    if any(row.action == "restore" for row in dead):
        from jamey_engine.vault.restore_journal import needs_recovery, recover

        memory = engine.memory  # opening the store recovers a killed restore already
        recover(memory, engine.db, engine.settings.data_dir)
        restore_recovered = not needs_recovery(memory.generations.root, engine.settings.data_dir)
    settled = []
    for row in dead:
        plan = store.get(engine.db, row.id)
        pid = int(row.applier_pid)
        if row.action != "restore":
            message = f"apply interrupted: process {pid} died"
            moved = _settle(engine, plan, "failed", message, None)
        elif not restore_recovered:
            continue
        elif _restore_committed(engine.db, plan):
            message = (
                f"apply interrupted: process {pid} died after the restore committed; "
                "the restore was rolled forward (the backup's memories and rows are in place)"
            )
            result = {"backup_id": plan.summary.get("backup_id"), "recovered": "forward", "note": message}
            moved = _settle(engine, plan, "applied", message, result)
        else:
            message = (
                f"apply interrupted: process {pid} died before the restore committed; "
                "the restore was rolled back, nothing changed"
            )
            moved = _settle(engine, plan, "failed", message, {"recovered": "back"})
        if moved:
            settled.append(plan.id)
    return settled


def get(engine: Engine, plan_id: str) -> store.PlanRecord:
    """The plan ``plan_id`` as every door shows it, once interrupted applies are settled. Raises NotFound."""
    reap(engine)
    return store.get(engine.db, plan_id)


def list_plans(
    engine: Engine, status: str | None = None, limit: int = store.LIST_LIMIT
) -> list[store.PlanRecord]:
    """:func:`store.list_plans` once interrupted applies are settled. Raises InvalidInput."""
    reap(engine)
    return store.list_plans(engine.db, status=status, limit=limit)
