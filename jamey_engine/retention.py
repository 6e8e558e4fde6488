"""Memory retention: the policies per layer (in the database, every change audited) and the runs.

The rules that cut a layer live in :mod:`jamey_engine.memory.retention`; this module holds what
needs the database and the operation log:

- :class:`RetentionPolicies`: each layer's ``max_age`` and ``max_bytes``, who set them and when,
  and the audit trail of every change. The default is no policy: nothing is ever deleted.
- :func:`run_retention`: plan (a dry run) or apply every policy, one layer at a time, under a
  run lock (one run at a time per data dir), recorded in the operation log as kind
  ``retention``: one row per layer (documents deleted, bytes freed, bytes before and after in
  the detail) and one row for the run (``layer`` empty), which /metrics counts.
- :func:`retention_summary` and :func:`last_run`: what /metrics and the workbench read.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from jamey_engine.durations import format_duration, format_size, parse_duration, parse_size, utcnow
from jamey_engine.errors import Busy, InvalidInput, JameyError
from jamey_engine.memory.layers import LAYERS, check_layer
from jamey_engine.memory.retention import LayerPlan, Policy, apply_layer, plan_layer
from jamey_engine.models import Operation, RetentionEvent, RetentionPolicy
from jamey_engine.progress import Progress, no_progress

if TYPE_CHECKING:
    from jamey_engine.db import Database
    from jamey_engine.engine import Engine

log = logging.getLogger(__name__)

MIN_MAX_AGE = timedelta(hours=1)
MIN_MAX_BYTES = 1024**2
SCHEDULE_ACTOR = "retention"
RUN_LOCK = "RETENTION.lock"


@dataclass(frozen=True)
class PolicyInfo:
    """One layer's policy as the front doors show it (None: no limit; ``set_by``/``set_at`` None: no policy)."""

    layer: str
    max_age: timedelta | None = None
    max_bytes: int | None = None
    set_by: str | None = None
    set_at: datetime | None = None

    @property
    def policy(self) -> Policy:
        return Policy(self.max_age, self.max_bytes)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: max_age as text (``30d``) and in seconds, max_bytes in bytes and as text; nulls when unset."""
        return {
            "layer": self.layer,
            "max_age": format_age(self.max_age) if self.max_age else None,
            "max_age_seconds": int(self.max_age.total_seconds()) if self.max_age else None,
            "max_bytes": self.max_bytes,
            "max_bytes_text": format_size(self.max_bytes) if self.max_bytes else None,
            "set_by": self.set_by,
            "set_at": self.set_at.isoformat() if self.set_at else None,
        }


def format_age(age: timedelta) -> str:
    """A max_age as people write it: ``30d``, ``36h``, else the compact form (``1d2h30m``)."""
    seconds = int(age.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return format_duration(age)


def check_max_age(value: str | timedelta) -> timedelta:
    """A max_age of at least one hour, from ``30d``-style text or a timedelta; InvalidInput otherwise."""
    if isinstance(value, timedelta):
        age = value
    else:
        try:
            age = parse_duration(value, field="max_age")
        except OverflowError:
            raise InvalidInput(f"max_age {value!r} is too long") from None
    if age < MIN_MAX_AGE:
        raise InvalidInput(f"max_age {value!r} is under the minimum of 1h")
    if age > timedelta(days=365 * 300):
        raise InvalidInput(f"max_age {value!r} is longer than 300 years")
    return timedelta(seconds=int(age.total_seconds()))


def check_max_bytes(value: str | int) -> int:
    """A max_bytes of at least 1 MiB, from ``1GiB``-style text or an int; InvalidInput otherwise."""
    if isinstance(value, bool):
        raise InvalidInput(f"max_bytes {value!r} is not a size")
    size = value if isinstance(value, int) else parse_size(value, field="max_bytes")
    if size < MIN_MAX_BYTES:
        raise InvalidInput(f"max_bytes {value!r} is under the minimum of 1MiB")
    if size > 2**62:
        raise InvalidInput(f"max_bytes {value!r} is too large")
    return size


def _describe(info: PolicyInfo | None) -> str | None:
    if info is None or info.policy.empty:
        return None
    parts = []
    if info.max_age is not None:
        parts.append(f"max_age={format_age(info.max_age)}")
    if info.max_bytes is not None:
        parts.append(f"max_bytes={format_size(info.max_bytes)}")
    return " ".join(parts)


def _info(row: RetentionPolicy) -> PolicyInfo:
    age = timedelta(seconds=row.max_age_seconds) if row.max_age_seconds is not None else None
    return PolicyInfo(row.layer, age, row.max_bytes, row.set_by, row.set_at)


def _clean_actor(actor: str) -> str:
    text = str(actor or "").strip()
    if not text:
        raise InvalidInput("actor must not be empty")
    return text[:100]


class RetentionPolicies:
    """The layers' retention policies in the database. Thread-safe (each call is one transaction)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def show(self) -> list[PolicyInfo]:
        """Every layer, in layer order, with its policy (max_age/max_bytes None when unset)."""
        with self.db.session() as session:
            rows = {row.layer: _info(row) for row in session.scalars(sa.select(RetentionPolicy))}
        return [rows.get(layer, PolicyInfo(layer)) for layer in LAYERS]

    def get(self, layer: str) -> PolicyInfo:
        """One layer's policy. Raises InvalidInput for an unknown layer."""
        check_layer(layer)
        return next(info for info in self.show() if info.layer == layer)

    def active(self) -> dict[str, Policy]:
        """The layers that have a policy, and their policies."""
        return {info.layer: info.policy for info in self.show() if not info.policy.empty}

    def set(
        self,
        layer: str,
        *,
        max_age: str | timedelta | None = None,
        max_bytes: str | int | None = None,
        actor: str,
    ) -> PolicyInfo:
        """Set ``max_age`` and/or ``max_bytes`` of ``layer`` (a limit not given stays as it was),
        recording ``actor`` and the time, and the change in the audit trail (same transaction).

        Raises InvalidInput, changing nothing: an unknown layer, neither limit given, max_age
        under 1h, max_bytes under 1 MiB, a malformed duration or size.
        """
        check_layer(layer)
        if max_age is None and max_bytes is None:
            raise InvalidInput("give max_age, max_bytes or both (e.g. max_age 30d, max_bytes 1GiB)")
        age = check_max_age(max_age) if max_age is not None else None
        size = check_max_bytes(max_bytes) if max_bytes is not None else None
        return self._change(layer, actor, lambda old: (age or old.max_age, size or old.max_bytes))

    def replace(
        self, layer: str, *, max_age: str | timedelta | None, max_bytes: str | int | None, actor: str
    ) -> PolicyInfo:
        """Make ``layer``'s policy exactly this (None: no such limit; both None: no policy). Audited.

        Raises InvalidInput as :meth:`set` does (neither limit is allowed here: it clears).
        """
        check_layer(layer)
        age = check_max_age(max_age) if max_age is not None else None
        size = check_max_bytes(max_bytes) if max_bytes is not None else None
        return self._change(layer, actor, lambda old: (age, size))

    def clear(self, layer: str, *, max_age: bool = False, max_bytes: bool = False, actor: str) -> PolicyInfo:
        """Remove the named limits of ``layer`` (neither named: both). Audited. Raises InvalidInput."""
        check_layer(layer)
        both = not max_age and not max_bytes
        return self._change(
            layer,
            actor,
            lambda old: (
                None if (max_age or both) else old.max_age,
                None if (max_bytes or both) else old.max_bytes,
            ),
        )

    def _change(self, layer: str, actor: str, new: Any) -> PolicyInfo:
        who = _clean_actor(actor)
        now = utcnow()
        with self.db.session() as session:
            row = session.get(RetentionPolicy, layer, with_for_update=True)
            old = _info(row) if row is not None else PolicyInfo(layer)
            age, size = new(old)
            after = PolicyInfo(layer, age, size, who, now)
            if row is not None and after.policy.empty:
                session.delete(row)
            elif not after.policy.empty:
                if row is None:
                    row = RetentionPolicy(layer=layer)
                    session.add(row)
                row.max_age_seconds = int(age.total_seconds()) if age is not None else None
                row.max_bytes = size
                row.set_by = who
                row.set_at = now
            session.add(
                RetentionEvent(at=now, layer=layer, actor=who, before=_describe(old), after=_describe(after))
            )
        log.info("retention policy of %s: %s -> %s (by %s)", layer, _describe(old), _describe(after), who)
        return after if not after.policy.empty else PolicyInfo(layer)

    def audit(self, limit: int = 200, layer: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` policy changes first: dict(at, layer, actor, before, after)."""
        if limit <= 0:
            raise InvalidInput(f"audit limit {limit!r} must be above zero")
        query = sa.select(RetentionEvent).order_by(RetentionEvent.id.desc()).limit(limit)
        if layer is not None:
            query = query.where(RetentionEvent.layer == check_layer(layer))
        with self.db.session() as session:
            return [
                {"at": e.at, "layer": e.layer, "actor": e.actor, "before": e.before, "after": e.after}
                for e in session.scalars(query)
            ]


# -- runs -------------------------------------------------------------------------------------


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
            "delete_bytes": max(self.bytes_before - self.bytes_after, 0),
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


@contextmanager
def run_lock(engine: Engine) -> Iterator[None]:
    """Hold the retention run lock of the data dir (one run at a time across processes).

    Waits up to the lock timeout, then raises Busy. The kernel frees it if the holder dies.
    """
    root = engine.settings.memory_dir
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / RUN_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + engine.settings.lock_timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Busy("a retention run is in progress in another process; try again") from None
                time.sleep(0.05)
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


def run_retention(
    engine: Engine, *, dry_run: bool = False, actor: str = SCHEDULE_ACTOR, progress: Progress | None = None
) -> RetentionRun:
    """Plan (``dry_run``: nothing changes, nothing recorded) or apply every layer's policy.

    Applying goes one layer at a time through ``MemoryStore.prune`` and sweeps generations a
    killed run left behind first. Each layer with a policy is recorded in the operation log as a
    ``retention`` row (actor ``actor``) and the run as one more row; a failure is recorded as a
    failed run and re-raised. Layers without a policy are never touched. Raises Busy when
    another run holds the run lock, StorageCorrupt for a damaged layer.
    """
    from jamey_engine import oplog

    who = _clean_actor(actor)
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
    try:
        with run_lock(engine):
            for number, (layer, policy) in enumerate(policies.items(), start=1):
                store.generations.sweep_strays(layer)

                prefix = f"{layer} ({number}/{len(policies)})"

                def layer_progress(current: int, total: int, stage: str, _prefix: str = prefix) -> None:
                    report(current, total, f"{_prefix}: {stage}")

                report(0, 0, f"{prefix}: planning")
                outcome = apply_layer(store, layer, policy, progress=layer_progress)
                plan_reason = "none" if outcome.cutoff is None else "policy"
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
                        plan_reason,
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
            "size_bytes": max(layer.bytes_before - layer.bytes_after, 0),
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
            "size_bytes": sum(max(layer.bytes_before - layer.bytes_after, 0) for layer in done),
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
