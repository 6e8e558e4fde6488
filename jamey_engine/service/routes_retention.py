"""Retention routes: read the layers' policies and the plan (``ops:read``), set a layer's policy
(``admin``), apply every policy now (``ops:write``). The actor recorded is the calling key's name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from jamey_engine.retention import PolicyInfo, RetentionRun
from jamey_engine.service.auth import KeyedRoute, current_key, engine_of, needs
from jamey_engine.service.errors import ERROR_RESPONSES

router = APIRouter(
    prefix="/admin/retention", tags=["retention"], responses=ERROR_RESPONSES, route_class=KeyedRoute
)

LayerName = Annotated[str, Path(min_length=1, max_length=32, description="A memory layer.")]


class PolicyOut(BaseModel):
    layer: str
    max_age: str | None = Field(description="Such as 30d; null: no age limit.")
    max_age_seconds: int | None
    max_bytes: int | None = Field(description="Bytes; null: no size limit.")
    set_by: str | None
    set_at: datetime | None


class PolicyList(BaseModel):
    policies: list[PolicyOut]


class PolicyBody(BaseModel):
    max_age: str | None = Field(
        default=None, max_length=32, description="Such as 30d (at least 1h); null or absent: no age limit."
    )
    max_bytes: str | int | None = Field(
        default=None, description="Such as 1GiB, 500MB or a byte count (at least 1MiB); null: no size limit."
    )


class LayerFigures(BaseModel):
    layer: str
    max_age: str | None
    max_bytes: int | None
    documents: int
    bytes_before: int
    delete_documents: int
    delete_bytes: int
    bytes_after: int
    cutoff: datetime | None
    passes: int


class RunOut(BaseModel):
    dry_run: bool
    actor: str
    duration_seconds: float
    deleted: int
    layers: list[LayerFigures]
    note: str | None = None


def _policy(info: PolicyInfo) -> PolicyOut:
    data = info.as_dict()
    return PolicyOut(
        layer=info.layer,
        max_age=data["max_age"],
        max_age_seconds=data["max_age_seconds"],
        max_bytes=info.max_bytes,
        set_by=info.set_by,
        set_at=info.set_at,
    )


def _run(run: RetentionRun) -> RunOut:
    data: dict[str, Any] = run.as_dict()
    return RunOut(
        dry_run=run.dry_run,
        actor=run.actor,
        duration_seconds=data["duration_seconds"],
        deleted=data["deleted"],
        layers=[LayerFigures.model_validate(layer) for layer in data["layers"]],
        note=run.note,
    )


@router.get("", response_model=PolicyList, openapi_extra=needs("ops:read"))
def show_policies(request: Request) -> PolicyList:
    """Every layer's policy (max_age and max_bytes null when unset), and who set it when."""
    return PolicyList(policies=[_policy(info) for info in engine_of(request).retention.show()])


@router.get("/plan", response_model=RunOut, openapi_extra=needs("ops:read"))
def plan(request: Request) -> RunOut:
    """Per layer with a policy, the memories and bytes the next run would remove, and the cut-off."""
    return _run(engine_of(request).apply_retention(dry_run=True, actor=str(current_key(request).name)))


@router.put("/{layer}", response_model=PolicyOut, openapi_extra=needs("admin"))
def set_policy(layer: LayerName, body: PolicyBody, request: Request) -> PolicyOut:
    """Make the layer's policy exactly this body (both limits null: no policy). Audited under the key's name.

    400, changing nothing: an unknown layer, max_age under 1h, max_bytes under 1MiB, a malformed value.
    """
    info = engine_of(request).retention.replace(
        layer, max_age=body.max_age, max_bytes=body.max_bytes, actor=str(current_key(request).name)
    )
    return _policy(info)


@router.post("/apply", response_model=RunOut, openapi_extra=needs("ops:write"))
async def apply_now(request: Request) -> RunOut:
    """Apply every policy now (in a worker thread; writes keep flowing). 503 when a run is in progress."""
    engine = engine_of(request)
    actor = str(current_key(request).name)
    run = await run_in_threadpool(lambda: engine.apply_retention(actor=actor))
    return _run(run)
