"""Runbook schedule routes under ``/admin/runbooks/schedules``: list them (``ops:read``), add,
pause, resume and remove one (``ops:write``). The schedule's creator is the calling key's name;
its runs' actor is ``schedule``. Bad input answers 400 naming the field and value, an unknown
runbook or schedule 404, and nothing is recorded then.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from jamey_engine.errors import InvalidInput
from jamey_engine.runbooks import launch, schedules
from jamey_engine.service.auth import KeyedRoute, current_key, engine_of, needs
from jamey_engine.service.errors import ERROR_RESPONSES
from jamey_engine.service.schedule_contract import check_schedule_body, schedule_body_schema

router = APIRouter(
    prefix="/admin/runbooks/schedules", tags=["runbooks"], responses=ERROR_RESPONSES, route_class=KeyedRoute
)

READ = needs("ops:read")
WRITE = needs("ops:write")
# The ids are the database's 32-bit integers: a larger number is refused by the schema (422).
ScheduleId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The schedule's id.")]


class ScheduleOut(BaseModel):
    id: int
    runbook: str
    cron: str
    timezone: str
    parameters: dict[str, Any]
    next_run_at: str | None = Field(description="The next slot (UTC, ISO 8601); null while paused.")
    last_run_id: str | None
    last_status: str | None
    last_success_at: str | None
    paused: bool
    created_by: str
    created_at: str


class AddedSchedule(ScheduleOut):
    next_run_times: list[str] = Field(description="The next five slots (UTC, ISO 8601).")


class ScheduleList(BaseModel):
    schedules: list[ScheduleOut]


@router.get("", response_model=ScheduleList, openapi_extra=READ)
def list_schedules(request: Request) -> ScheduleList:
    """Every schedule: runbook, cron, time zone, parameters, next run, last run and its status."""
    found = schedules.list_schedules(engine_of(request).db)
    return ScheduleList(schedules=[ScheduleOut(**schedule.to_dict()) for schedule in found])


# The body's schema is built from the service's catalog when the OpenAPI document is
# (document_schedule_body); this placeholder marks the operation as taking a JSON body.
BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}


@router.post("", status_code=201, response_model=AddedSchedule, openapi_extra={**WRITE, "requestBody": BODY})
async def add_schedule(request: Request) -> AddedSchedule:
    """Add a schedule of a runbook (analyses, dry runs, and changes through the plan contract:
    each run plans, and applies only when no approval is required); the answer has its next five
    run times. A body outside the schema (an unknown runbook, a bad cron expression, time zone or
    parameter, a plan_id) is a 422 naming the field; a runbook that needs a scope the key lacks
    (admin for restore_backup and rotate_key) is a 403."""
    raw = await request.body()
    try:
        body: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("body: not valid JSON; expected runbook, cron, timezone and parameters") from None
    return await run_in_threadpool(_add, request, body)


def _add(request: Request, body: Any) -> AddedSchedule:
    engine = engine_of(request)
    checked = check_schedule_body(body, launch.catalog(engine))
    schedule = schedules.add_schedule(
        engine,
        checked["runbook"],
        checked["cron"],
        timezone=checked.get("timezone", "UTC"),
        parameters=checked.get("parameters") or {},
        created_by=str(current_key(request).name),
        scopes=tuple(current_key(request).scopes),
    )
    upcoming = schedules.next_run_times(schedule.cron, schedule.timezone, schedule.created_at)
    return AddedSchedule(**schedule.to_dict(), next_run_times=[at.isoformat() for at in upcoming])


@router.post("/{schedule_id}/pause", response_model=ScheduleOut, openapi_extra=WRITE)
def pause_schedule(request: Request, schedule_id: ScheduleId) -> ScheduleOut:
    """Stop the schedule from starting runs (a run already started goes on)."""
    return ScheduleOut(**schedules.pause_schedule(engine_of(request).db, schedule_id).to_dict())


@router.post("/{schedule_id}/resume", response_model=ScheduleOut, openapi_extra=WRITE)
def resume_schedule(request: Request, schedule_id: ScheduleId) -> ScheduleOut:
    """Start the schedule again from its next slot after now (slots missed while paused do not run)."""
    return ScheduleOut(**schedules.resume_schedule(engine_of(request).db, schedule_id).to_dict())


@router.delete("/{schedule_id}", status_code=204, openapi_extra=WRITE)
def remove_schedule(request: Request, schedule_id: ScheduleId) -> Response:
    """Delete the schedule (its runs stay in the history)."""
    schedules.remove_schedule(engine_of(request).db, schedule_id)
    return Response(status_code=204)


def document_schedule_body(schema: dict[str, Any], request_catalog: Any) -> None:
    """Put the exact body schema of ``POST /admin/runbooks/schedules`` (built from the runbook
    catalog ``request_catalog``) into the OpenAPI document ``schema``."""
    operation = schema.get("paths", {}).get(router.prefix, {}).get("post")
    if operation is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schedule_body_schema(request_catalog)}},
        }
