"""The FastAPI application: ``create_app(engine)`` wires routes, auth, metrics and middleware.

Unkeyed: ``GET /health`` and ``GET /metrics`` (no key, no rate limit). Keyed: ``/whoami``,
``/memories/...``, ``/admin/...`` and the Alertmanager webhook. The app does not own the engine: whoever built the engine
closes it (the CLI, or a test fixture).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from jamey_engine import __version__
from jamey_engine.observability.metrics import build_metrics
from jamey_engine.service import heap
from jamey_engine.service.auth import (
    SECURITY_SCHEMES,
    Authenticator,
    KeyedRoute,
    current_key,
    flush_in_background,
    needs,
)
from jamey_engine.service.contract import content_limits
from jamey_engine.service.errors import ERROR_RESPONSES, install_error_handler
from jamey_engine.service.fastpath import FastPath
from jamey_engine.service.middleware import BodySizeLimit, RateLimitDefaults, ServiceMiddleware
from jamey_engine.service.pools import ServiceLimiters
from jamey_engine.service.routes_acks import router as acks_router
from jamey_engine.service.routes_admin import router as admin_router
from jamey_engine.service.routes_alerts import router as alerts_router
from jamey_engine.service.routes_memory import router as memory_router
from jamey_engine.service.routes_plans import router as plans_router
from jamey_engine.service.routes_retention import router as retention_router
from jamey_engine.service.routes_runbooks import router as runbooks_router
from jamey_engine.service.routes_schedules import document_schedule_body
from jamey_engine.service.routes_schedules import router as schedules_router

if TYPE_CHECKING:
    from jamey_engine.engine import Engine

log = logging.getLogger(__name__)

common = APIRouter()
# The event-loop path (verify_cached) never writes, so last-used times are written from here.
LAST_USED_FLUSH_EVERY = 2.0


class Check(BaseModel):
    ok: bool
    detail: str


class Health(BaseModel):
    status: str
    version: str
    data_dir: Check
    database: Check


class WhoAmI(BaseModel):
    id: str
    name: str
    scopes: list[str]
    rate_limit: str
    legacy: bool


def check_data_dir(engine: Engine) -> Check:
    """Can we create and remove a file in the data dir? (No path in the answer: /health is public.)"""
    try:
        engine.settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".health-", dir=engine.settings.data_dir)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        return Check(ok=False, detail=f"not writable ({err.strerror or type(err).__name__})")
    return Check(ok=True, detail="writable")


def check_database(engine: Engine) -> Check:
    """Does ``SELECT 1`` succeed? (The error class only: URLs may hold passwords.)"""
    import sqlalchemy as sa

    try:
        with engine.db.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as err:
        return Check(ok=False, detail=f"unusable ({type(err).__name__})")
    return Check(ok=True, detail="ok")


@common.get("/health", response_model=Health, responses={503: {"model": Health}}, tags=["service"])
def health(request: Request) -> Any:
    """Status and version, and whether the data dir and the database are usable (503 if not)."""
    engine: Engine = request.app.state.engine
    body = Health(
        status="ok", version=__version__, data_dir=check_data_dir(engine), database=check_database(engine)
    )
    if body.data_dir.ok and body.database.ok:
        return body
    body.status = "unavailable"
    return JSONResponse(body.model_dump(), status_code=503)


@common.get("/metrics", response_class=Response, tags=["service"])
def metrics(request: Request) -> Response:
    """Prometheus exposition (text format 0.0.4); the same totals whichever worker answers."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


keyed = APIRouter(route_class=KeyedRoute)


@keyed.get(
    "/whoami", response_model=WhoAmI, responses=ERROR_RESPONSES, tags=["service"], openapi_extra=needs(None)
)
async def whoami(request: Request) -> WhoAmI:
    """The calling key's public id, name, scopes and limit: a cheap way to test a key."""
    key = current_key(request)
    return WhoAmI(
        id=key.id, name=key.name, scopes=list(key.scopes), rate_limit=key.rate_limit, legacy=key.legacy
    )


def _warm_up(engine: Engine) -> None:
    """Build the key manager and limiter and open the database (running migrations) before the
    first request, so neither happens on the event loop and failures show early."""
    engine.limiter  # noqa: B018 (building it is the point)
    try:
        engine.keys.count()
    except Exception as err:
        log.warning("database not ready at startup (%s: %s); /health will say so", type(err).__name__, err)


def _flush(engine: Engine) -> None:
    # uvicorn re-raises SIGTERM once the app has shut down, so the CLI's engine.close() may
    # never run: flush the memory layers' write-ahead logs here (a clean shutdown).
    memory = engine.__dict__.get("memory")
    if memory is not None:
        try:
            memory.flush()
        except Exception:
            log.warning("could not flush the memory write-ahead logs at shutdown", exc_info=True)
    try:
        engine.flush_key_usage()
    except Exception:
        log.warning("could not flush key last-used times at shutdown", exc_info=True)


def _start_schedules(engine: Engine) -> list[Any]:
    """The scheduled jobs of this process, each behind its lease (only the holder runs it)."""
    from jamey_engine.service.scheduler import (
        BackupScheduler,
        RetentionScheduler,
        RunbookScheduler,
        SchedulerLease,
    )

    schedules: list[Any] = []
    interval = engine.settings.backup_interval
    if interval is not None:
        lease = SchedulerLease(engine.settings.data_dir, "backup")
        schedules.append(BackupScheduler(engine, interval, lease=lease).start())
        log.info("scheduled backups every %s (in whichever worker holds %s)", interval, lease.path.name)
    if engine.settings.retention_interval is not None:  # runs in the process holding its own lock
        schedules.append(RetentionScheduler(engine, engine.settings.retention_interval).start())
    # Runbook schedules (the shipped ones are paused): only the worker holding the lease runs them.
    schedules.append(
        RunbookScheduler(engine, lease=SchedulerLease(engine.settings.data_dir, "runbooks")).start()
    )
    return schedules


def create_app(
    engine: Engine, *, schedules: bool = False, owns_engine: bool = False, fast_path: bool = True
) -> ServiceApp:
    """The service app for ``engine``: a fresh metrics registry, so tests can build many apps.

    ``schedules``: run the scheduled jobs (backups) while the app runs, each only in the process
    holding its lease. ``owns_engine``: close the engine when the app shuts down (the worker
    processes of ``jamey serve --workers N`` build their own engine). ``fast_path``: answer
    well-formed keyed searches and stores without the framework (service/fastpath.py; off only
    to measure what it saves).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio

        await run_in_threadpool(_warm_up, engine)
        running = await run_in_threadpool(_start_schedules, engine) if schedules else []
        # Last of the start-up: everything built so far lives as long as the worker.
        frozen = heap.settle(engine.settings)
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(flush_in_background, engine, LAST_USED_FLUSH_EVERY, service_metrics)
                yield
                tasks.cancel_scope.cancel()
            await run_in_threadpool(_flush, engine)
        finally:
            for schedule in running:
                await run_in_threadpool(schedule.stop)
            if service_metrics.mirror is not None:
                _mark_dead()
            limiter = engine.__dict__.get("limiter")
            if limiter is not None:
                await limiter.aclose()  # this loop's asyncio Redis connections
            heap.unsettle(thaw=frozen)
            if owns_engine:
                await run_in_threadpool(engine.close)

    app = ServiceApp(
        title="Jamey",
        version=__version__,
        summary="Memory store behind API keys, with per-key and global rate limits.",
        lifespan=lifespan,
        # The service exports Prometheus metrics itself; FastAPI's OpenTelemetry hooks would only
        # look up (absent) providers on every request, about a tenth of a cheap request's time.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    service_metrics = build_metrics(engine)
    app.state.engine = engine
    app.state.metrics = service_metrics
    app.state.limiters = ServiceLimiters()
    app.state.authenticator = Authenticator(engine, service_metrics, app.state.limiters)
    install_error_handler(app)
    app.include_router(common)
    app.include_router(keyed)
    app.include_router(memory_router)
    app.include_router(plans_router)
    app.include_router(admin_router)
    app.include_router(alerts_router)
    app.include_router(acks_router)
    app.include_router(retention_router)
    app.include_router(schedules_router)
    app.include_router(runbooks_router)
    outer: dict[str, Any] = {
        "metrics": service_metrics,
        "defaults": RateLimitDefaults.from_limit(engine.settings.default_rate_limit),
        "fastapi_app": app,
        "engine": engine,
    }
    app.add_middleware(BodySizeLimit, max_bytes=engine.settings.max_body_bytes)
    app.add_middleware(ServiceMiddleware, **outer)
    if fast_path:
        app.fast_path = FastPath(
            app,
            engine,
            lambda inner: ServiceMiddleware(inner, **outer),
        )
    _document_security(app, engine.settings.max_content_bytes)
    return app


class ServiceApp(FastAPI):
    """The service's FastAPI app, which first offers each request to its fast path."""

    fast_path: FastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_path
        if fast is not None and fast.takes(scope):
            await fast(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def _mark_dead() -> None:
    """Drop this worker's live gauges from the shared metrics (it is stopping)."""
    from prometheus_client import multiprocess

    try:
        multiprocess.mark_process_dead(os.getpid())
    except OSError:
        log.debug("could not mark this worker dead in the shared metrics", exc_info=True)


def _document_security(app: FastAPI, max_content_bytes: int) -> None:
    """Add the key schemes to the OpenAPI components (operations name them via ``needs``) and
    this service's content size limit."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            content_limits(schema, max_content_bytes)
            from jamey_engine.runbooks.launch import catalog

            document_schedule_body(schema, catalog(app.state.engine))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
