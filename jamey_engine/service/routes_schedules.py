"""Runbook schedule routes under ``/admin/runbooks/schedules``: list them (``ops:read``), add,
pause, resume and remove one (``ops:write``). The schedule's creator is the calling key's name;
its runs' actor is ``schedule``. Bad input answers 400 naming the field and value, an unknown
runbook or schedule 404, and nothing is recorded then.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from jamey_engine.runbooks import schedules
from jamey_engine.service.auth import KeyedRoute, current_key, engine_of, needs
from jamey_engine.service.contract import NOT_BLANK_PATTERN
from jamey_engine.service.errors import ERROR_RESPONSES

router = APIRouter(
    prefix="/admin/runbooks/schedules", tags=["runbooks"], responses=ERROR_RESPONSES, route_class=KeyedRoute
)

READ = needs("ops:read")
WRITE = needs("ops:write")
# The ids are the database's 32-bit integers: a larger number is refused by the schema (422).
ScheduleId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The schedule's id.")]


class ScheduleBody(BaseModel):
    runbook: str = Field(min_length=1, max_length=100, description="The runbook (notebook stem).")
    cron: str = Field(
        min_length=1,
        max_length=100,
        pattern=NOT_BLANK_PATTERN,
        description="Five fields, minute hour day month weekday (``0 6 * * *``), or @daily and the like.",
    )
    timezone: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        description="The IANA time zone the expression is read in.",
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Parameter values by name (analyses and dry runs only)."
    )


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


@router.post("", status_code=201, response_model=AddedSchedule, openapi_extra=WRITE)
def add_schedule(request: Request, body: ScheduleBody) -> AddedSchedule:
    """Add a schedule; the answer has its next five run times. 404 for an unknown runbook, 400
    names a bad cron expression, time zone or parameter, or parameters that would change data."""
    engine = engine_of(request)
    schedule = schedules.add_schedule(
        engine,
        body.runbook,
        body.cron,
        timezone=body.timezone,
        parameters=body.parameters,
        created_by=str(current_key(request).name),
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
