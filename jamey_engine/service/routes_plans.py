"""Plan routes: create, list, show, approve, reject and apply plans (the one contract for every
change). The route needs ``ops:read`` to read and ``ops:write`` to act; the contract then asks for
each action's own scope (``admin`` for a restore, a backup deletion or a key action)."""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from jamey_engine.errors import Conflict
from jamey_engine.plans import recovery, store
from jamey_engine.plans.actors import Actor
from jamey_engine.plans.applying import claim, run_claimed
from jamey_engine.plans.approvals import approve, reject
from jamey_engine.plans.names import ActionName, StatusName
from jamey_engine.plans.planning import plan
from jamey_engine.service.auth import KeyedRoute, current_key, engine_of, needs
from jamey_engine.service.contract import DURATION_PATTERN, NOT_BLANK_PATTERN
from jamey_engine.service.errors import ERROR_RESPONSES, error_responses

log = logging.getLogger(__name__)

PlanId = Annotated[str, Path(min_length=1, max_length=40, description="The plan's id.")]

# Timestamps as the engine writes them (ISO 8601), so the API's plan JSON is the CLI's, byte for byte.
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
_LAYER = "(?:short_term|long_term|working|episodic|semantic)"
LAYERS_PATTERN = rf"^(?:all|{_LAYER}(?:,{_LAYER})*)$"
KEY_ID_PATTERN = r"^[0-9A-Za-z_-]{1,64}$"
BACKUP_ID_PATTERN = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$"
STRICT = ConfigDict(extra="forbid")

router = APIRouter(
    prefix="/admin/plans",
    tags=["plans"],
    responses={**ERROR_RESPONSES, **error_responses(404, 409)},
    route_class=KeyedRoute,
)
READ = needs("ops:read")
WRITE = needs("ops:write")


class PruneParameters(BaseModel):
    model_config = STRICT
    older_than: str = Field(
        pattern=DURATION_PATTERN, description="Delete memories older than this (e.g. 30d)."
    )
    layer: str | None = Field(
        default=None, pattern=LAYERS_PATTERN, description="all (default) or layers, comma separated."
    )


class DedupeParameters(BaseModel):
    model_config = STRICT
    layer: str | None = Field(
        default=None, pattern=LAYERS_PATTERN, description="all (default) or layers, comma separated."
    )


class NoParameters(BaseModel):
    model_config = STRICT


class RestoreParameters(BaseModel):
    model_config = STRICT
    backup_id: str | None = Field(
        default=None, pattern=BACKUP_ID_PATTERN, description="Default: the newest backup."
    )
    reenable_keys: bool = Field(
        default=False, description="Bring back keys revoked or rotated since the backup."
    )


class BackupDeleteParameters(BaseModel):
    model_config = STRICT
    backup_id: str = Field(pattern=BACKUP_ID_PATTERN, description="The backup to delete.")


class BackupRetentionParameters(BaseModel):
    model_config = STRICT
    retention: Literal[True] = Field(
        description="Delete what the tiered backup retention drops, local and remote (JAMEY_BACKUP_KEEP_*)."
    )
    keep_last: int | None = Field(
        default=None,
        ge=1,
        strict=True,
        description="Instead of the settings' policy: keep only the newest N local backups.",
    )
    keep_days: int | None = Field(
        default=None,
        ge=0,
        strict=True,
        description="Instead of the settings' policy: also keep local backups younger than D days.",
    )


class KeyRevokeParameters(BaseModel):
    model_config = STRICT
    key_ids: list[Annotated[str, Field(pattern=KEY_ID_PATTERN)]] = Field(
        min_length=1, max_length=100, description="The keys to revoke."
    )


class KeyRotateParameters(BaseModel):
    model_config = STRICT
    key_id: str = Field(pattern=KEY_ID_PATTERN, description="The key to rotate.")
    grace: str | None = Field(
        default=None, pattern=DURATION_PATTERN, description="Keep the old key this long."
    )


class PrunePlanBody(BaseModel):
    model_config = STRICT
    action: Literal["prune"]
    parameters: PruneParameters


class DedupePlanBody(BaseModel):
    model_config = STRICT
    action: Literal["dedupe"]
    parameters: DedupeParameters = Field(default_factory=DedupeParameters)


class RetentionPlanBody(BaseModel):
    model_config = STRICT
    action: Literal["retention"]
    parameters: NoParameters = Field(default_factory=NoParameters)


class RestorePlanBody(BaseModel):
    model_config = STRICT
    action: Literal["restore"]
    parameters: RestoreParameters = Field(default_factory=RestoreParameters)


class BackupDeletePlanBody(BaseModel):
    model_config = STRICT
    action: Literal["backup-delete"]
    parameters: BackupDeleteParameters | BackupRetentionParameters  # one backup, or the retention


class KeyRevokePlanBody(BaseModel):
    model_config = STRICT
    action: Literal["key-revoke"]
    parameters: KeyRevokeParameters


class KeyRotatePlanBody(BaseModel):
    model_config = STRICT
    action: Literal["key-rotate"]
    parameters: KeyRotateParameters


PlanBody = Annotated[
    PrunePlanBody
    | DedupePlanBody
    | RetentionPlanBody
    | RestorePlanBody
    | BackupDeletePlanBody
    | KeyRevokePlanBody
    | KeyRotatePlanBody,
    Field(discriminator="action"),
]


class DecisionBody(BaseModel):
    model_config = STRICT
    comment: str = Field(
        min_length=1,
        max_length=2000,
        pattern=NOT_BLANK_PATTERN,
        description="Why the plan is approved or rejected.",
    )


class ApplyBody(BaseModel):
    model_config = STRICT
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
def create_plan(body: Annotated[PlanBody, Body()], request: Request) -> PlanOut:
    """Plan an action: preflight, what it would change, its digest and confirm phrase; changes nothing."""
    parameters = body.parameters.model_dump(exclude_none=True)
    return _out(plan(engine_of(request), body.action, parameters, _actor(request)))


@router.get("", response_model=PlanList, openapi_extra=READ)
def list_plans(
    request: Request,
    status: Annotated[StatusName | None, Query(description="Only plans in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = store.LIST_LIMIT,
) -> PlanList:
    """The newest plans first."""
    return PlanList(
        plans=[_out(r) for r in recovery.list_plans(engine_of(request), status=status, limit=limit)]
    )


@router.get("/{plan_id}", response_model=PlanOut, openapi_extra=READ)
def show_plan(request: Request, plan_id: PlanId) -> PlanOut:
    """One plan, with its approval, progress and result."""
    return _out(recovery.get(engine_of(request), plan_id))


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
        raise Conflict(
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
