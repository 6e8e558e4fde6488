"""Plan routes: create, list, show, approve, reject and apply plans (the one contract for every
change). The route needs ``ops:read`` to read and ``ops:write`` to act; the contract then asks for
each action's own scope (``admin`` for a restore, a backup deletion or a key action)."""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from jamey_engine.errors import InvalidInput
from jamey_engine.plans import store
from jamey_engine.plans.actors import Actor
from jamey_engine.plans.applying import claim, run_claimed
from jamey_engine.plans.approvals import approve, reject
from jamey_engine.plans.names import ACTIONS, STATUSES
from jamey_engine.plans.planning import plan
from jamey_engine.service.auth import KeyedRoute, current_key, engine_of, needs
from jamey_engine.service.errors import ERROR_RESPONSES, error_responses

log = logging.getLogger(__name__)

PlanId = Annotated[str, Path(min_length=1, max_length=40, description="The plan's id.")]
ActionName = Literal["prune", "dedupe", "retention", "restore", "backup-delete", "key-revoke", "key-rotate"]
StatusName = Literal[
    "planned", "pending_approval", "approved", "rejected", "applying", "applied", "failed", "expired", "stale"
]
assert set(ActionName.__args__) == set(ACTIONS) and set(StatusName.__args__) == set(STATUSES)  # type: ignore[attr-defined]

# Timestamps as the engine writes them (ISO 8601), so the API's plan JSON is the CLI's, byte for byte.
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
ParameterValue = (
    Annotated[str, Field(max_length=500)] | bool | list[Annotated[str, Field(max_length=100)]] | None
)

router = APIRouter(
    prefix="/admin/plans",
    tags=["plans"],
    responses={**ERROR_RESPONSES, **error_responses(404, 409)},
    route_class=KeyedRoute,
)
READ = needs("ops:read")
WRITE = needs("ops:write")


class PlanBody(BaseModel):
    action: ActionName = Field(description="The action to plan.")
    parameters: dict[Annotated[str, Field(max_length=40)], ParameterValue] = Field(
        default_factory=dict,
        max_length=10,
        description="The action's parameters (prune: older_than, layer; dedupe: layer; restore: backup_id, "
        "reenable_keys; backup-delete: backup_id; key-revoke: key_ids; key-rotate: key_id, grace).",
    )


class DecisionBody(BaseModel):
    comment: str = Field(min_length=1, max_length=2000, description="Why the plan is approved or rejected.")


class ApplyBody(BaseModel):
    confirm: str = Field(min_length=1, max_length=500, description="The plan's confirm phrase, exactly.")


class ApprovalOut(BaseModel):
    status: Literal["not_required", "pending", "approved", "rejected"]
    by: str | None = None
    at: Timestamp | None = None
    comment: str | None = None


class PlanOut(BaseModel):
    id: str
    action: ActionName
    parameters: dict[str, Any]
    status: StatusName
    summary: dict[str, Any]
    digest: str
    confirm_phrase: str
    requires_approval: bool
    planned_by: str
    created_at: Timestamp
    expires_at: Timestamp
    approval: ApprovalOut
    applied_by: str | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    progress: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None


class PlanList(BaseModel):
    plans: list[PlanOut]


def _out(record: store.PlanRecord) -> PlanOut:
    return PlanOut.model_validate(record.as_dict())


def _actor(request: Request) -> Actor:
    return Actor.from_key(current_key(request))


@router.post("", status_code=201, response_model=PlanOut, openapi_extra=WRITE)
def create_plan(body: PlanBody, request: Request) -> PlanOut:
    """Plan an action: preflight, what it would change, its digest and confirm phrase; changes nothing."""
    return _out(plan(engine_of(request), body.action, dict(body.parameters), _actor(request)))


@router.get("", response_model=PlanList, openapi_extra=READ)
def list_plans(
    request: Request,
    status: Annotated[StatusName | None, Query(description="Only plans in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = store.LIST_LIMIT,
) -> PlanList:
    """The newest plans first."""
    return PlanList(
        plans=[_out(r) for r in store.list_plans(engine_of(request).db, status=status, limit=limit)]
    )


@router.get("/{plan_id}", response_model=PlanOut, openapi_extra=READ)
def show_plan(request: Request, plan_id: PlanId) -> PlanOut:
    """One plan, with its approval, progress and result."""
    return _out(store.get(engine_of(request).db, plan_id))


@router.post("/{plan_id}/approve", response_model=PlanOut, openapi_extra=WRITE)
def approve_plan(request: Request, plan_id: PlanId, body: DecisionBody) -> PlanOut:
    """Approve a plan pending approval, as a key other than its planner's, holding the action's scope."""
    return _out(approve(engine_of(request), plan_id, _actor(request), body.comment))


@router.post("/{plan_id}/reject", response_model=PlanOut, openapi_extra=WRITE)
def reject_plan(request: Request, plan_id: PlanId, body: DecisionBody) -> PlanOut:
    """Reject a plan pending approval (same rules as approve)."""
    return _out(reject(engine_of(request), plan_id, _actor(request), body.comment))


@router.post("/{plan_id}/apply", status_code=202, response_model=PlanOut, openapi_extra=WRITE)
def apply_plan(request: Request, plan_id: PlanId, body: ApplyBody) -> PlanOut:
    """Apply a plan in the background once its phrase matches (and it is approved where required);
    GET the plan to follow its progress and read its result."""
    engine = engine_of(request)
    actor = _actor(request)
    if store.get(engine.db, plan_id).action == "key-rotate":
        raise InvalidInput(
            "a key-rotate plan shows its new key once, so it is applied where the key can be shown: "
            "POST /admin/keys/{key_id}/rotate or jamey plans apply"
        )
    claimed = claim(engine, plan_id, body.confirm, actor)

    def work() -> None:
        try:
            run_claimed(engine, claimed, actor)
        except Exception:  # recorded on the plan (failed or stale) by run_claimed
            log.info("plan %s did not apply", claimed.id, exc_info=True)

    threading.Thread(target=work, name=f"plan-{claimed.id}", daemon=True).start()
    return _out(claimed)
