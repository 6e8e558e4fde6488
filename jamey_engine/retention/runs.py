"""Retention runs: plan or apply every layer's policy under a run lock, recorded in the operation
log (kind ``retention``: a row per layer and one for the run), and what /metrics and the
workbench read back (:func:`retention_summary`, :func:`last_run`, :func:`next_scheduled_run`).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from jamey_engine.durations import utcnow
from jamey_engine.errors import Busy, Conflict, JameyError
from jamey_engine.memory.layers import LAYERS, check_layer
from jamey_engine.memory.retention import LayerPlan, Policy, apply_layer, plan_layer
from jamey_engine.models import Operation, RetentionPolicy
from jamey_engine.progress import Progress, no_progress
from jamey_engine.retention.policies import (
    RetentionPolicies,
    check_max_age,
    check_max_bytes,
    clean_actor,
    format_age,
)
from jamey_engine.sizes import bytes_freed, total_freed

if TYPE_CHECKING:
    from jamey_engine.db import Database
    from jamey_engine.engine import Engine

SCHEDULE_ACTOR = "retention"
RUN_LOCK = "RETENTION.lock"


@dataclass(frozen=True)
class LayerRetention:
    """One layer's figures in a plan or a run: documents and bytes before, what goes, and after."""

    layer: str
    max_age: timedelta | None
    max_bytes: int | None
    documents: int
    bytes_before: int
    deleted: int
    bytes_after: int
    cutoff: datetime | None
    reason: str
    passes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "max_age": format_age(self.max_age) if self.max_age else None,
            "max_bytes": self.max_bytes,
            "documents": self.documents,
            "bytes_before": self.bytes_before,
            "delete_documents": self.deleted,
            "delete_bytes": bytes_freed(self),
            "bytes_after": self.bytes_after,
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "reason": self.reason,
            "passes": self.passes,
        }


@dataclass(frozen=True)
class RetentionRun:
    """A plan (``dry_run``) or an applied run: each layer with a policy, the time taken, and a note
    when recording the run failed."""

    layers: list[LayerRetention]
    dry_run: bool
    duration: float
    actor: str
    note: str | None = None
    at: datetime = field(default_factory=utcnow)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "actor": self.actor,
            "at": self.at.isoformat(),
            "duration_seconds": round(self.duration, 3),
            "deleted": sum(layer.deleted for layer in self.layers),
            "layers": [layer.as_dict() for layer in self.layers],
            "note": self.note,
        }


#: How long an exclusive try (``wait`` False) retries while the lock is held: a probe holds it
#: shared for microseconds, a run for its whole length.
PROBE_GRACE_SECONDS = 0.5


@contextmanager
def run_lock(engine: Engine, *, wait: bool = True, probe: bool = False) -> Iterator[None]:
    """Hold the retention run lock of the data dir (one run at a time across processes).

    Waits up to the lock timeout, then raises Busy; with ``wait`` False, raises Conflict at once
    when a run holds it (a caller that must not hold a thread waiting, as the service). With
    ``probe``, holds it shared: "is a run in progress?" asked by many requests at once never makes
    one of them see the others' question as a run (parallel applies' preflights did), while a run
    (exclusive) still refuses every probe at once. The kernel frees it if the holder dies.
    """
    root = engine.settings.memory_dir
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / RUN_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + (engine.settings.lock_timeout if wait else PROBE_GRACE_SECONDS)
    try:
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if probe else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait and (probe or time.monotonic() >= deadline):
                    raise Conflict("a retention run is in progress; try again when it ends") from None
                if time.monotonic() >= deadline:
                    raise Busy("a retention run is in progress in another process; try again") from None
                time.sleep(0.005 if not wait else 0.05)
        yield
    finally:
        os.close(fd)


def _planned(layer: str, policy: Policy, plan: LayerPlan) -> LayerRetention:
    return LayerRetention(
        layer,
        policy.max_age,
        policy.max_bytes,
        plan.documents,
        plan.bytes,
        plan.delete_documents,
        plan.bytes - plan.delete_bytes,
        plan.cutoff,
        plan.reason,
    )


def preview_policy(
    engine: Engine, layer: str, *, max_age: str | timedelta | None, max_bytes: str | int | None
) -> LayerRetention:
    """What ``layer`` would lose now if its policy were this one (checked exactly as
    :meth:`RetentionPolicies.replace` checks it). Changes nothing. Raises InvalidInput."""
    check_layer(layer)
    age = check_max_age(max_age) if max_age is not None else None
    size = check_max_bytes(max_bytes) if max_bytes is not None else None
    policy = Policy(age, size)
    return _planned(layer, policy, plan_layer(engine.memory, layer, policy))


def run_retention(
    engine: Engine,
    *,
    dry_run: bool = False,
    actor: str = SCHEDULE_ACTOR,
    progress: Progress | None = None,
    wait: bool = True,
) -> RetentionRun:
    """Plan (``dry_run``: nothing changes, nothing recorded) or apply every layer's policy.

    Applying goes one layer at a time through ``MemoryStore.prune`` and sweeps generations a
    killed run left behind first. Each layer with a policy is recorded in the operation log as a
    ``retention`` row (actor ``actor``) and the run as one more row; a failure is recorded as a
    failed run and re-raised. Layers without a policy are never touched. Raises Busy when
    another run holds the run lock past the lock timeout (Conflict at once without ``wait``),
    StorageCorrupt for a damaged layer.
    """
    from jamey_engine import oplog

    who = clean_actor(actor)
    started = time.monotonic()
    policies = RetentionPolicies(engine.db).active()
    store = engine.memory
    report = progress or no_progress
    if dry_run:
        layers = [
            _planned(layer, policy, plan_layer(store, layer, policy)) for layer, policy in policies.items()
        ]
        return RetentionRun(layers, True, time.monotonic() - started, who)
    done: list[LayerRetention] = []
    with run_lock(engine, wait=wait):  # a run that never started (Busy, Conflict) is not recorded
        try:
            for number, (layer, policy) in enumerate(policies.items(), start=1):
                store.generations.sweep_strays(layer)

                prefix = f"{layer} ({number}/{len(policies)})"

                def layer_progress(current: int, total: int, stage: str, _prefix: str = prefix) -> None:
                    report(current, total, f"{_prefix}: {stage}")

                report(0, 0, f"{prefix}: planning")
                outcome = apply_layer(store, layer, policy, progress=layer_progress)
                done.append(
                    LayerRetention(
                        layer,
                        policy.max_age,
                        policy.max_bytes,
                        outcome.documents_after + outcome.deleted,
                        outcome.bytes_before,
                        outcome.deleted,
                        outcome.bytes_after,
                        outcome.cutoff,
                        outcome.reason,
                        outcome.passes,
                    )
                )
        except JameyError as err:
            elapsed = time.monotonic() - started
            _record(oplog, engine, "failure", elapsed, done, who, err.message)
            raise
        elapsed = time.monotonic() - started
        note = _record(oplog, engine, "success", elapsed, done, who, None) if policies else None
        return RetentionRun(done, False, elapsed, who, note)


def _record(
    oplog: Any,
    engine: Engine,
    status: str,
    elapsed: float,
    done: list[LayerRetention],
    actor: str,
    error: str | None,
) -> str | None:
    rows: list[dict[str, Any]] = [
        {
            "layer": layer.layer,
            "count": layer.deleted,
            "size_bytes": bytes_freed(layer),
            "detail": json.dumps(
                {
                    "bytes_before": layer.bytes_before,
                    "bytes_after": layer.bytes_after,
                    "cutoff": layer.cutoff.isoformat() if layer.cutoff else None,
                    "passes": layer.passes,
                }
            ),
        }
        for layer in done
    ]
    rows.append(
        {
            "layer": None,
            "count": sum(layer.deleted for layer in done),
            "size_bytes": total_freed(done),
            "detail": error,
        }
    )
    event = {
        "status": status,
        "actor": actor,
        "deleted": {layer.layer: layer.deleted for layer in done},
        **({"detail": error} if error else {}),
    }
    result: str | None = oplog.record(
        engine.db, engine.events, "retention", status, elapsed, rows=rows, event=event, actor=actor
    )
    return result


# -- what /metrics and the workbench read ----------------------------------------------------


@dataclass(frozen=True)
class RetentionSummary:
    """Runs by status, documents deleted per layer, the last success (epoch seconds), the failures
    since it, and whether any layer has a policy."""

    runs: dict[str, int]
    deleted: dict[str, int]
    last_success: float | None
    consecutive_failures: int
    configured: bool


def retention_summary(db: Database) -> RetentionSummary:
    """The retention counters over the whole operation log (a few indexed queries)."""
    ops = Operation.__table__
    runs = {"success": 0, "failure": 0}
    deleted = dict.fromkeys(LAYERS, 0)
    retention = ops.c.kind == "retention"
    with db.connect() as conn:
        for status, number in conn.execute(
            sa.select(ops.c.status, sa.func.count())
            .where(retention, ops.c.layer.is_(None))
            .group_by(ops.c.status)
        ):
            runs[status] = int(number)
        for layer, total in conn.execute(
            sa.select(ops.c.layer, sa.func.coalesce(sa.func.sum(ops.c.count), 0))
            .where(retention, ops.c.layer.is_not(None))
            .group_by(ops.c.layer)
        ):
            deleted[layer] = int(total)
        last = conn.execute(
            sa.select(sa.func.max(ops.c.id)).where(
                retention, ops.c.layer.is_(None), ops.c.status == "success"
            )
        ).scalar_one()
        last_at = None
        if last is not None:
            last_at = conn.execute(sa.select(Operation.at).where(Operation.id == last)).scalar_one()
        failures = conn.execute(
            sa.select(sa.func.count()).where(
                retention, ops.c.layer.is_(None), ops.c.status == "failure", ops.c.id > (last or 0)
            )
        ).scalar_one()
        configured = conn.execute(sa.select(sa.func.count()).select_from(RetentionPolicy)).scalar_one()
    return RetentionSummary(
        runs, deleted, last_at.timestamp() if last_at else None, int(failures), bool(configured)
    )


def last_run(db: Database, actor: str | None = None) -> dict[str, Any] | None:
    """The newest retention run (of ``actor`` when given): dict(at, status, actor, deleted, detail,
    layers: {layer: deleted}); None before the first."""
    with db.session() as session:
        query = sa.select(Operation).where(Operation.kind == "retention", Operation.layer.is_(None))
        if actor is not None:
            query = query.where(Operation.actor == actor)
        run = session.scalars(query.order_by(Operation.id.desc()).limit(1)).first()
        if run is None:
            return None
        earlier = session.scalars(
            sa.select(Operation.id)
            .where(Operation.kind == "retention", Operation.layer.is_(None), Operation.id < run.id)
            .order_by(Operation.id.desc())
            .limit(1)
        ).first()
        layers = session.execute(
            sa.select(Operation.layer, Operation.count).where(
                Operation.kind == "retention",
                Operation.layer.is_not(None),
                Operation.id < run.id,
                Operation.id > (earlier or 0),
                Operation.actor == run.actor,
            )
        ).all()
        return {
            "at": run.at,
            "status": run.status,
            "actor": run.actor,
            "deleted": run.count or 0,
            "freed_bytes": run.size_bytes or 0,
            "detail": run.detail,
            "layers": {layer: count or 0 for layer, count in layers},
        }


def next_scheduled_run(db: Database, interval: timedelta | None) -> datetime | None:
    """When the service's schedule runs next: the last scheduled run plus ``interval`` (now when
    there was none or it is overdue); None when the schedule is off."""
    if interval is None:
        return None
    previous = last_run(db, actor=SCHEDULE_ACTOR)
    now = utcnow()
    if previous is None:
        return now
    return max(previous["at"] + interval, now)
