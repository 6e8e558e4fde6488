"""The operation log: every backup, restore and prune, by any process, persisted in the database.

A backup run from the CLI or a prune from a notebook happens outside the service, yet its
counters must reach the service's ``/metrics``. So each run is one row in ``operations``, and
the metrics collector reads :func:`operation_summary` at scrape time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

import sqlalchemy as sa

from jamey_engine.db import Database
from jamey_engine.durations import utcnow
from jamey_engine.errors import InvalidInput
from jamey_engine.models import Operation

log = logging.getLogger(__name__)

# delete: a backup removed (by hand or retention); dedupe: duplicate memories removed;
# silence: an Alertmanager silence created or expired; retention: memory retention policies applied;
# rekey: a backup re-encrypted to new recipients; runbook: a notebook run by the runner;
# plan: a plan applied (naming the plan, its planner, approver and applier)
KINDS = (
    "backup",
    "restore",
    "prune",
    "delete",
    "dedupe",
    "silence",
    "retention",
    "rekey",
    "runbook",
    "plan",
    "verify",
    "pull",
    "offsite",
    "drill",
)
#: How an operation ended: the ``status`` column and the ``status`` label of every
#: ``*_operations_total`` counter (and so of the alert rules and dashboards that read them).
OperationStatus = Literal["success", "failure"]
STATUSES: tuple[OperationStatus, ...] = get_args(OperationStatus)
#: A runbook run's final status (``runbooks.runs.STATUSES``: succeeded, failed, cancelled,
#: interrupted) as the operation it is recorded as. Runs keep their own vocabulary because a run
#: has states an operation never has (queued, running, and two ways of ending unfinished) and
#: its statuses are stored in ``runbook_runs`` and shown by every door; operations keep theirs
#: because it is the label the metrics, alert rules and dashboards already query. So the two
#: meet here, once: only a run that succeeded is a successful operation.
RUN_OPERATION_STATUS: Mapping[str, OperationStatus] = {
    "succeeded": "success",
    "failed": "failure",
    "cancelled": "failure",
    "interrupted": "failure",
}
_DETAIL_LIMIT = 2000


@dataclass(frozen=True)
class OperationSummary:
    """What the metrics need from the operation log.

    ``counts[(kind, status)]`` for every kind and status (zero included);
    ``last_success_timestamp[kind]`` (epoch seconds, None before the first success);
    ``last_duration_seconds[kind]`` and ``last_size_bytes[kind]`` of the latest SUCCESSFUL run
    (a failed run has no meaningful size); ``pruned_documents[layer]``: documents removed by
    successful prunes, summed.
    """

    counts: dict[tuple[str, OperationStatus], int] = field(default_factory=dict)
    last_success_timestamp: dict[str, float | None] = field(default_factory=dict)
    last_duration_seconds: dict[str, float | None] = field(default_factory=dict)
    last_size_bytes: dict[str, int | None] = field(default_factory=dict)
    pruned_documents: dict[str, int] = field(default_factory=dict)


def record_operation(
    db: Database,
    kind: str,
    status: OperationStatus,
    duration_seconds: float,
    size_bytes: int | None = None,
    layer: str | None = None,
    count: int | None = None,
    detail: str | None = None,
    actor: str | None = None,
) -> None:
    """Persist one run of ``kind`` (backup, restore, prune, delete, dedupe) that ended in ``status``
    (success, failure), run by ``actor`` (a key's name, ``cli``, ``schedule``…) when known.

    ``detail`` is cut to 2000 characters, ``actor`` to 100. Raises InvalidInput naming the field on an unknown
    kind or status, or a negative duration, size or count; nothing is written then.
    """
    if kind not in KINDS:
        raise InvalidInput(f"operation kind {kind!r} is unknown; use one of {', '.join(KINDS)}")
    if status not in STATUSES:
        raise InvalidInput(f"operation status {status!r} is unknown; use one of {', '.join(STATUSES)}")
    for name, value in (("duration_seconds", duration_seconds), ("size_bytes", size_bytes), ("count", count)):
        if value is not None and value < 0:
            raise InvalidInput(f"operation {name} {value!r} must not be negative")
    with db.session() as session:
        session.add(
            Operation(
                at=utcnow(),
                kind=kind,
                status=status,
                duration_seconds=float(duration_seconds),
                size_bytes=size_bytes,
                layer=layer,
                count=count,
                detail=detail[:_DETAIL_LIMIT] if detail else detail,
                actor=actor[:100] if actor else None,
            )
        )


class EventSink(Protocol):
    """What the recorder needs from :class:`jamey_engine.events.EventPublisher`."""

    def publish(self, kind: str, payload: dict[str, Any]) -> Any: ...


def record(
    db: Database,
    events: EventSink | None,
    kind: str,
    status: OperationStatus,
    duration_seconds: float,
    *,
    rows: Sequence[Mapping[str, Any]] | None = None,
    event: Mapping[str, Any] | None = None,
    **fields: Any,
) -> str | None:
    """Record one finished operation in the log and publish its event: the one way every front
    door, the vault and the engine leave a record.

    Writes one row with ``fields`` (see :func:`record_operation`), or one row per mapping in
    ``rows`` (each merged over ``fields``), then publishes ``event`` (default: the status, the
    duration and the non-empty fields) as a ``kind`` event. Best effort: the database or the
    broker may be what failed, and that must never hide the operation's own result, so this
    never raises. It returns None when the record was written, else a one-line note saying so.
    """
    note = None
    try:
        for row in rows if rows is not None else [{}]:
            record_operation(db, kind, status, duration_seconds, **{**fields, **row})
    except Exception as err:
        log.warning("could not record the %s %s in the operation log", kind, status, exc_info=True)
        reason = getattr(err, "message", None) or type(err).__name__
        note = f"The {kind} is done, but recording it in the operation log failed ({reason})."
    if events is not None:
        payload = (
            dict(event)
            if event is not None
            else {"status": status, "duration_seconds": round(duration_seconds, 3)}
        )
        if event is None:
            payload.update({key: value for key, value in fields.items() if value is not None})
        try:
            events.publish(kind, payload)
        except Exception:
            log.warning("could not publish the %s event", kind, exc_info=True)
    return note


def operation_summary(db: Database) -> OperationSummary:
    """Counters and last-run facts over the whole log (a handful of indexed queries)."""
    ops = Operation.__table__
    counts = {(kind, status): 0 for kind in KINDS for status in STATUSES}
    last_ts: dict[str, float | None] = dict.fromkeys(KINDS)
    last_duration: dict[str, float | None] = dict.fromkeys(KINDS)
    last_size: dict[str, int | None] = dict.fromkeys(KINDS)
    pruned: dict[str, int] = {}
    with db.connect() as conn:
        for kind, status, number in conn.execute(
            sa.select(ops.c.kind, ops.c.status, sa.func.count()).group_by(ops.c.kind, ops.c.status)
        ):
            counts[(kind, status)] = int(number)
        latest = (
            sa.select(ops.c.kind, sa.func.max(ops.c.id).label("id"))
            .where(ops.c.status == "success")
            .group_by(ops.c.kind)
            .subquery()
        )
        for row in conn.execute(
            sa.select(Operation.kind, Operation.at, Operation.duration_seconds, Operation.size_bytes).join(
                latest, Operation.id == latest.c.id
            )
        ):
            last_ts[row.kind] = row.at.timestamp()
            last_duration[row.kind] = row.duration_seconds
            last_size[row.kind] = row.size_bytes
        for layer, total in conn.execute(
            sa.select(ops.c.layer, sa.func.coalesce(sa.func.sum(ops.c.count), 0))
            .where(ops.c.kind == "prune", ops.c.status == "success", ops.c.layer.is_not(None))
            .group_by(ops.c.layer)
        ):
            pruned[layer] = int(total)
    return OperationSummary(
        counts=counts,
        last_success_timestamp=last_ts,
        last_duration_seconds=last_duration,
        last_size_bytes=last_size,
        pruned_documents=pruned,
    )


def recent_operations(db: Database, limit: int = 50, kind: str | None = None) -> list[dict[str, object]]:
    """The newest ``limit`` operations (optionally of one ``kind``), newest first, as dicts."""
    query = sa.select(Operation).order_by(Operation.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(Operation.kind == kind)
    with db.session() as session:
        return [
            {
                "at": op.at,
                "kind": op.kind,
                "status": op.status,
                "duration_seconds": op.duration_seconds,
                "size_bytes": op.size_bytes,
                "layer": op.layer,
                "count": op.count,
                "detail": op.detail,
                "actor": op.actor,
            }
            for op in session.scalars(query)
        ]
