"""The plan store: plans as rows in the database, their status changes and their audit trail.

Every change of status is one conditional UPDATE (``WHERE status IN (...)``), so two processes
that approve or apply the same plan at once cannot both win. An open plan past its expiry shows
as ``expired`` to every reader (nothing is written), and no status change starts from it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa

from jamey_engine.db import Database
from jamey_engine.durations import utcnow
from jamey_engine.errors import InvalidInput, NotFound
from jamey_engine.models import Plan, PlanEvent
from jamey_engine.plans.names import OPEN_STATUSES, STATUSES

LIST_LIMIT = 200
_PLANS = cast(sa.Table, Plan.__table__)
_PLAN_ID = "plan-"


def new_plan_id(now: datetime) -> str:
    """A plan id that sorts by creation time and cannot be guessed: ``plan-20261206T023000-1a2b3c4d``."""
    return f"{_PLAN_ID}{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class PlanRecord:
    """One stored plan, as every door shows it (``as_dict()`` is the same JSON from CLI and API)."""

    id: str
    action: str
    parameters: dict[str, Any]
    status: str
    summary: dict[str, Any]
    digest: str
    confirm_phrase: str
    requires_approval: bool
    planned_by: str
    planned_by_key: str | None
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_by_key: str | None
    decided_at: datetime | None
    decision_comment: str | None
    applied_by: str | None
    started_at: datetime | None
    finished_at: datetime | None
    progress: str | None
    result: dict[str, Any] | None
    error: str | None

    @classmethod
    def from_row(cls, row: Any, now: datetime) -> PlanRecord:
        """A record of a plans row (an ORM object or a mapping); an open plan past its expiry
        at ``now`` shows as ``expired``."""
        values: Mapping[str, Any] = (
            row
            if isinstance(row, Mapping)
            else {column.name: getattr(row, column.name) for column in _PLANS.c}
        )
        status = values["status"]
        if status in OPEN_STATUSES and values["expires_at"] <= now:
            status = "expired"
        result = values["result"]
        return cls(
            id=values["id"],
            action=values["action"],
            parameters=json.loads(values["parameters"]),
            status=status,
            summary=json.loads(values["summary"]),
            digest=values["digest"],
            confirm_phrase=values["confirm_phrase"],
            requires_approval=bool(values["requires_approval"]),
            planned_by=values["planned_by"],
            planned_by_key=values["planned_by_key"],
            created_at=values["created_at"],
            expires_at=values["expires_at"],
            decided_by=values["decided_by"],
            decided_by_key=values["decided_by_key"],
            decided_at=values["decided_at"],
            decision_comment=values["decision_comment"],
            applied_by=values["applied_by"],
            started_at=values["started_at"],
            finished_at=values["finished_at"],
            progress=values["progress"],
            result=json.loads(result) if result else None,
            error=values["error"],
        )

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-friendly values (timestamps in ISO 8601)."""
        return {
            "id": self.id,
            "action": self.action,
            "parameters": self.parameters,
            "status": self.status,
            "summary": self.summary,
            "digest": self.digest,
            "confirm_phrase": self.confirm_phrase,
            "requires_approval": self.requires_approval,
            "planned_by": self.planned_by,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "approval": {
                "status": _approval_state(self),
                "by": self.decided_by,
                "at": _iso(self.decided_at),
                "comment": self.decision_comment,
            },
            "applied_by": self.applied_by,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "progress": self.progress,
            "result": self.result,
            "error": self.error,
        }


def _approval_state(plan: PlanRecord) -> str:
    if not plan.requires_approval:
        return "not_required"
    if plan.decided_at is None:
        return "pending"
    return "rejected" if plan.status == "rejected" else "approved"


_INSERT_PLAN = _PLANS.insert()
_PLAN_COLUMNS = frozenset(_PLANS.c.keys())
_INSERT_EVENT = cast(sa.Table, PlanEvent.__table__).insert()


def insert(db: Database, fields: Mapping[str, Any]) -> PlanRecord:
    """Store a new plan row (``fields`` by column name; the decision and apply columns left
    out are empty) and its ``planned`` audit event; return it as a record.

    Two Core inserts in one transaction, not the ORM's unit of work: this is on every door's
    path to a change, and the flush bookkeeping cost more than the writes (bench_plans). Each
    insert is one statement with bound parameters, compiled once per process: with the values
    inlined (``.values(**row)``) SQLAlchemy built a new statement and its cache key each time,
    which cost more than the write itself. The row is a plain mapping, not an ORM object
    (building one cost ~50 µs of attribute instrumentation per plan)."""
    unknown = fields.keys() - _PLAN_COLUMNS
    if unknown:
        raise ValueError(f"not columns of plans: {sorted(unknown)}")
    values = {column: fields.get(column) for column in _PLAN_COLUMNS}
    values["requires_approval"] = bool(values["requires_approval"])
    event = {
        "at": utcnow(),
        "plan_id": values["id"],
        "event": "planned",
        "actor": str(values["planned_by"])[:100],
        "actor_key": values["planned_by_key"],
        "detail": values["action"],
    }
    with db.begin() as conn:
        conn.execute(_INSERT_PLAN, values)
        conn.execute(_INSERT_EVENT, event)
    return PlanRecord.from_row(values, utcnow())


def _event(plan_id: str, event: str, actor: str, actor_key: str | None, detail: str | None) -> PlanEvent:
    return PlanEvent(
        at=utcnow(),
        plan_id=plan_id,
        event=event,
        actor=actor[:100],
        actor_key=actor_key,
        detail=detail[:2000] if detail else None,
    )


def record_event(
    db: Database, plan_id: str, event: str, actor: str, actor_key: str | None, detail: str | None
) -> None:
    """Append one entry to the plans' audit trail (a refusal, say, that changes no status)."""
    with db.session() as session:
        session.add(_event(plan_id, event, actor, actor_key, detail))


def _status_is(status: str, now: datetime) -> Any:
    """The WHERE clause for plans whose status, as shown, is ``status`` (open plans past their
    expiry show as expired without being written)."""
    plans = _PLANS
    if status == "expired":
        return sa.or_(
            plans.c.status == "expired",
            sa.and_(plans.c.status.in_(OPEN_STATUSES), plans.c.expires_at <= now),
        )
    if status in OPEN_STATUSES:
        return sa.and_(plans.c.status == status, plans.c.expires_at > now)
    return plans.c.status == status


def get(db: Database, plan_id: str) -> PlanRecord:
    """The plan ``plan_id`` (shown ``expired`` once its time has passed). Raises NotFound."""
    with db.connect() as conn:
        row = conn.execute(sa.select(_PLANS).where(_PLANS.c.id == str(plan_id))).mappings().first()
    if row is None:
        raise NotFound(f"plan {plan_id!r} does not exist; list plans with `jamey plans list`")
    return PlanRecord.from_row(row, utcnow())


def list_plans(db: Database, status: str | None = None, limit: int = LIST_LIMIT) -> list[PlanRecord]:
    """The newest ``limit`` plans (optionally only those whose status is ``status``), newest first.

    Reads only (expiry is applied as the rows are read). Raises InvalidInput naming an unknown status.
    """
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status {status!r} is not a plan status; use one of: {', '.join(STATUSES)}")
    now = utcnow()
    query = sa.select(_PLANS).order_by(_PLANS.c.created_at.desc(), _PLANS.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(_status_is(status, now))
    with db.connect() as conn:
        return [PlanRecord.from_row(row, now) for row in conn.execute(query).mappings()]


def pending_approval_count(db: Database) -> int:
    """How many plans wait for a second person now (one indexed count; expired ones excluded)."""
    with db.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(Plan)
                .where(Plan.status == "pending_approval", Plan.expires_at > utcnow())
            ).scalar_one()
        )


def transition(
    db: Database,
    plan_id: str,
    from_statuses: Iterable[str],
    to_status: str,
    *,
    event: tuple[str, str, str | None, str | None] | None = None,
    **values: Any,
) -> bool:
    """Move ``plan_id`` to ``to_status`` (setting ``values``) only if it is in ``from_statuses``
    and unexpired when it is open; append ``event`` (name, actor, actor key, detail) in the same
    transaction. Returns whether it moved."""
    plans = _PLANS
    condition = [plans.c.id == plan_id, plans.c.status.in_(tuple(from_statuses))]
    if set(from_statuses) & set(OPEN_STATUSES):
        condition.append(plans.c.expires_at > utcnow())
    with db.session() as session:
        moved = session.execute(sa.update(plans).where(*condition).values(status=to_status, **values))
        if not moved.rowcount:  # type: ignore[attr-defined]
            return False
        if event is not None:
            session.add(_event(plan_id, *event))
        return True


def set_progress(db: Database, plan_id: str, text: str) -> None:
    """Record how far an apply got (shown by GET while it runs)."""
    plans = _PLANS
    with db.begin() as conn:
        conn.execute(sa.update(plans).where(plans.c.id == plan_id).values(progress=text[:200]))


def events(db: Database, plan_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """The plans' audit trail (of one plan when ``plan_id``), oldest first."""
    query = sa.select(PlanEvent).order_by(PlanEvent.id.desc()).limit(limit)
    if plan_id is not None:
        query = query.where(PlanEvent.plan_id == plan_id)
    with db.session() as session:
        rows = [
            {
                "at": _iso(row.at),
                "plan_id": row.plan_id,
                "event": row.event,
                "actor": row.actor,
                "detail": row.detail,
            }
            for row in session.scalars(query)
        ]
    return rows[::-1]
