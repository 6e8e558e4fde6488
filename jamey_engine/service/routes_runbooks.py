"""Runbook routes: the catalog, starting and cancelling runs, the run history and a run's files.

Reading needs ``ops:read``, and the files of a run that quotes memory content (explore, dedupe)
``memory:read`` as well (:mod:`jamey_engine.runbooks.artifacts`); starting or cancelling a run needs ``ops:write`` (``admin`` grants
both). A run's actor is the calling key's name. Starting answers 202 at once: the run goes on
in its own process, and ``GET /admin/runbooks/runs/{id}`` follows it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from jamey_engine.errors import NotFound
from jamey_engine.runbooks import artifacts, launch, runs
from jamey_engine.service.auth import KeyedRoute, current_key, engine_of, needs
from jamey_engine.service.errors import ERROR_RESPONSES, error_responses

router = APIRouter(
    prefix="/admin/runbooks",
    tags=["runbooks"],
    responses={**ERROR_RESPONSES, **error_responses(409)},
    route_class=KeyedRoute,
)

READ = needs("ops:read")
WRITE = needs("ops:write")
RunbookName = Annotated[str, Path(min_length=1, max_length=100, description="The runbook (notebook stem).")]
RunId = Annotated[str, Path(min_length=1, max_length=40, description="The run's id.")]


class RunBody(BaseModel):
    parameters: dict[str, Any] = Field(default_factory=dict, description="Parameter values by name.")


class Started(BaseModel):
    id: str
    status: str


@router.get("", openapi_extra=READ)
def list_runbooks(request: Request) -> dict[str, Any]:
    """Every runbook: name, kind, title, description and parameters (name, type, default, help)."""
    return {"runbooks": launch.describe_catalog(engine_of(request))}


@router.get("/runs", openapi_extra=READ)
def list_runs(
    request: Request,
    runbook: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    """The run history, newest first, optionally filtered by runbook, status and actor."""
    engine = engine_of(request)
    found = runs.list_runs(engine.db, runbook=runbook, status=status, actor=actor, limit=limit)
    return {"runs": [run.to_dict() for run in found]}


@router.post("/{name}/runs", status_code=202, response_model=Started, openapi_extra=WRITE)
def start_run(request: Request, name: RunbookName, body: Annotated[RunBody | None, Body()] = None) -> Started:
    """Start a run; 400 names a bad parameter (nothing recorded), 403 when applying a restore
    without ``admin``, 409 names the data-changing run that is already running. Beyond
    ``JAMEY_RUNS_MAX_ACTIVE`` runs (``JAMEY_RUNS_MAX_PER_ACTOR`` of this key) the run is
    ``queued`` and starts when a slot frees; 429 with Retry-After when ``JAMEY_RUNS_MAX_QUEUED``
    runs already wait (nothing recorded)."""
    engine = engine_of(request)
    parameters = body.parameters if body is not None else {}
    key = current_key(request)
    record = launch.start_run(engine, name, parameters, actor=str(key.name), scopes=key.scopes)
    return Started(id=record.id, status=record.status)


@router.get("/runs/{run_id}", openapi_extra=READ)
def show_run(request: Request, run_id: RunId) -> dict[str, Any]:
    """One run: status, progress (cell index, count, heading), error, summary."""
    engine = engine_of(request)
    return runs.get_run(engine.db, run_id).to_dict()


def _file(request: Request, run_id: str, name: str, media_type: str) -> FileResponse:
    engine = engine_of(request)
    run = runs.get_run(engine.db, run_id)
    key = current_key(request)
    artifacts.require_files(str(key.name), key.scopes, run.runbook)
    path = runs.run_dir(engine.settings, run.id) / name
    if run.files_removed or not path.is_file():
        why = "were removed by retention" if run.files_removed else "are not written yet"
        raise NotFound(f"the files of runbook run {run.id} {why}")
    return FileResponse(path, media_type=media_type, filename=f"{run.runbook}-{run.id}{path.suffix}")


@router.get("/runs/{run_id}/notebook", openapi_extra=READ, response_class=FileResponse)
def run_notebook(request: Request, run_id: RunId) -> FileResponse:
    """The executed notebook (.ipynb)."""
    return _file(request, run_id, runs.NOTEBOOK_FILE, "application/x-ipynb+json")


@router.get("/runs/{run_id}/html", openapi_extra=READ, response_class=FileResponse)
def run_html(request: Request, run_id: RunId) -> FileResponse:
    """The executed notebook rendered as HTML (served as a download, never inline)."""
    response = _file(request, run_id, runs.HTML_FILE, "text/html")
    response.headers["Content-Security-Policy"] = "sandbox"
    return response


@router.post("/runs/{run_id}/cancel", status_code=202, response_model=Started, openapi_extra=WRITE)
def cancel_run(request: Request, run_id: RunId) -> Started:
    """Stop a run: its kernel is killed and it ends ``cancelled`` (follow it with GET). 403 unless
    the key holds the scope the run needed (admin for a restore); 409 when it already finished."""
    key = current_key(request)
    record = launch.cancel_run(engine_of(request), run_id, actor=key.name, scopes=key.scopes)
    return Started(id=record.id, status=record.status)
