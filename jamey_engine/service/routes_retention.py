"""Retention routes: read the layers' policies and the plan (``ops:read``), set a layer's policy
(``admin``), apply every policy now (``ops:write``). The actor recorded is the calling key's name.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError
from starlette.convertors import StringConvertor, register_url_convertor

from jamey_engine.memory.layers import Layer
from jamey_engine.plans.actors import Actor
from jamey_engine.plans.applying import plan_and_apply
from jamey_engine.retention import PolicyInfo, RetentionRun
from jamey_engine.retention.policies import MAX_MAX_BYTES, MIN_MAX_BYTES
from jamey_engine.service.auth import KeyedRoute, current_key, engine_of, needs
from jamey_engine.service.contract import MAX_AGE_PATTERN, MAX_BYTES_PATTERN
from jamey_engine.service.errors import ERROR_RESPONSES, error_responses
from jamey_engine.service.pools import run_admin

router = APIRouter(
    prefix="/admin/retention", tags=["retention"], responses=ERROR_RESPONSES, route_class=KeyedRoute
)

LayerName = Annotated[Layer, Path(description="A memory layer.")]
# The routes beside PUT /{layer}: a PUT to /admin/retention/plan or /apply is a 405 (they answer
# GET and POST), not a PUT of a layer named "plan". Any other segment reaches PUT /{layer}, so a
# name not of the five layers gets the 422 that names them.
PLAN, APPLY = "plan", "apply"


class _LayerSegment(StringConvertor):
    regex = rf"(?!(?:{PLAN}|{APPLY})$)[^/]+"


register_url_convertor("retention_layer", _LayerSegment())
_MAX_AGE = re.compile(MAX_AGE_PATTERN)
_MAX_BYTES = re.compile(MAX_BYTES_PATTERN)


def _max_age(value: Any) -> str | None:
    """What MAX_AGE_PATTERN allows (each of which the policy accepts), or null."""
    if value is None or (isinstance(value, str) and _MAX_AGE.fullmatch(value)):
        return value
    raise PydanticCustomError(
        "max_age",
        "expected a duration of at least 1h in whole weeks, days, hours or minutes, largest unit "
        "first, such as 30d, 36h, 2w or 1d12h, or null",
    )


def _max_bytes(value: Any) -> str | int | None:
    """A byte count from 1MiB to 2**53 - 1, what MAX_BYTES_PATTERN allows, or null."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 2097152.0 is the integer JSON Schema says it is
    if value is None or (isinstance(value, str) and _MAX_BYTES.fullmatch(value)):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and MIN_MAX_BYTES <= value <= MAX_MAX_BYTES:
        return value
    raise PydanticCustomError(
        "max_bytes",
        "expected a size of at least 1MiB: a byte count from 1048576 to 2**53 - 1, or a whole number "
        "of MB, GB, TB, MiB, GiB or TiB such as 500MB or 1GiB, or null",
    )


MaxAge = Annotated[
    str | None,
    PlainValidator(_max_age),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": MAX_AGE_PATTERN}, {"type": "null"}]}),
]
MaxBytes = Annotated[
    str | int | None,
    PlainValidator(_max_bytes),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": MIN_MAX_BYTES, "maximum": MAX_MAX_BYTES},
                {"type": "string", "pattern": MAX_BYTES_PATTERN},
                {"type": "null"},
            ]
        }
    ),
]


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
    max_age: MaxAge = Field(
        default=None,
        description="At least 1h, in whole weeks, days, hours or minutes, largest unit first "
        "(such as 30d, 36h, 2w, 1d12h); null or absent: no age limit.",
    )
    max_bytes: MaxBytes = Field(
        default=None,
        description="At least 1MiB: a byte count, or a whole number of MB, GB, TB, MiB, GiB or TiB "
        "(such as 500MB, 1GiB); null or absent: no size limit.",
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


@router.get(f"/{PLAN}", response_model=RunOut, openapi_extra=needs("ops:read"))
async def plan(request: Request) -> RunOut:
    """Per layer with a policy, the memories and bytes the next run would remove, and the cut-off.

    Planned under the admin limiter (a few at once: it flushes each layer's log)."""
    engine = engine_of(request)
    actor = str(current_key(request).name)
    return _run(await run_admin(request, lambda: engine.apply_retention(dry_run=True, actor=actor)))


@router.put("/{layer:retention_layer}", response_model=PolicyOut, openapi_extra=needs("admin"))
def set_policy(layer: LayerName, body: PolicyBody, request: Request) -> PolicyOut:
    """Make the layer's policy exactly this body (both limits null: no policy). Audited under the key's name.

    422, changing nothing: what the schema refuses (a layer not of the five, a max_age under 1h or
    not of its pattern, a max_bytes under 1MiB or not of its pattern).
    """
    info = engine_of(request).retention.replace(
        layer, max_age=body.max_age, max_bytes=body.max_bytes, actor=str(current_key(request).name)
    )
    return _policy(info)


@router.post(
    f"/{APPLY}", response_model=RunOut, openapi_extra=needs("ops:write"), responses=error_responses(409)
)
async def apply_now(request: Request) -> RunOut:
    """Apply every policy now through a plan (backup first, verify; in a worker thread under the
    admin limiter, writes keep flowing). 409 at once when a run is in progress (here or in another
    process: no thread waits for it), 409 naming the plan when a second key must approve."""
    engine = engine_of(request)
    key = Actor.from_key(current_key(request))
    done = await run_admin(request, lambda: plan_and_apply(engine, "retention", {}, key))
    return _run(done.native)
