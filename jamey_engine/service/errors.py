"""The service's one error handler: every failure becomes ``{"error": message, "status": N}``.

JameyError carries its own status; request validation errors become 422 (400 for a body that
is not JSON) with a message naming the field; Starlette's HTTP errors (404, 405, 413) keep
their status; anything else is a 500 that says "internal error" and logs the traceback
server-side. No header, and so no key, ever appears in a message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from jamey_engine.errors import Busy, JameyError, KeyRejected, RateLimited, Unavailable
from jamey_engine.redact import redact_paths
from jamey_engine.service.routemap import route_map

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """The JSON of every error answer."""

    error: str
    status: int


def error_payload(status: int, message: str) -> dict[str, Any]:
    """The error JSON as a dict: ``{"error": message, "status": status}``."""
    return {"error": message, "status": status}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSONResponse in the error shape."""
    return JSONResponse(error_payload(status, message), status_code=status, headers=headers)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_validation(errors: Sequence[Any]) -> str:
    """One line naming each bad field (up to three), why, and the value given when it is small."""
    parts = []
    for error in list(errors)[:3]:
        loc = [str(p) for p in error.get("loc", ())]
        where = loc[0] if loc else "request"
        field = ".".join(loc[1:]) if len(loc) > 1 else ""
        name = f"{field} ({where})" if field else where
        message = str(error.get("msg", "invalid"))
        given = error.get("input")
        if error.get("type") == "missing" or isinstance(given, (dict, list)) or given is None:
            parts.append(f"{name}: {message}")
        else:
            parts.append(f"{name}: {message} (got {_short(given)})")
    more = len(errors) - 3
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _is_json_error(errors: Sequence[Any]) -> bool:
    return any(error.get("type") == "json_invalid" for error in errors)


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    """Turn any exception into the error shape (the only place that does it)."""
    headers: dict[str, str] = {}
    if isinstance(exc, JameyError):
        status, message = exc.status, exc.message
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(max(1, int(exc.retry_after)))
        elif isinstance(exc, KeyRejected):
            headers["WWW-Authenticate"] = 'Bearer realm="jamey"'
        elif isinstance(exc, (Busy, Unavailable)):
            headers["Retry-After"] = "1"
        if status >= 500:
            log.error(
                "%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc.message
            )
            # The log keeps the whole message; the client learns no file system layout.
            message = redact_paths(message)
    elif isinstance(exc, RequestValidationError):
        errors = exc.errors()
        if _is_json_error(errors):
            detail = next(e for e in errors if e.get("type") == "json_invalid")
            reason = (detail.get("ctx") or {}).get("error", "cannot be parsed")
            status, message = 400, f"body: not valid JSON ({reason})"
        else:
            status, message = 422, describe_validation(errors)
    elif isinstance(exc, StarletteHTTPException):
        status = exc.status_code
        default = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "error"
        message = exc.detail if isinstance(exc.detail, str) and exc.detail else default
        headers.update(exc.headers or {})
        if status == 404 and message == "Not Found":
            message = f"no such route: {request.method} {request.url.path}"
        if status == 405:  # the route's 405 names its own methods at most: name all served here
            headers["Allow"] = ", ".join(allowed_methods(request))
    else:
        status, message = 500, "internal error"
        log.error("%s %s: unexpected %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
    return error_response(status, message, headers or None)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (for a 405's ``Allow``)."""
    return route_map(request.app).allowed(request.scope)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting the error shape for ``statuses``."""
    return {status: {"model": ErrorBody, "description": HTTPStatus(status).phrase} for status in statuses}


ERROR_RESPONSES = error_responses(400, 401, 403, 404, 413, 422, 429, 503)


def install_error_handler(app: FastAPI) -> None:
    """Register ``handle_error`` for engine errors, validation errors and HTTP errors."""
    for exc_class in (JameyError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(exc_class, handle_error)
