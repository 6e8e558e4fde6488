"""ASGI middleware: request metrics, security and rate-limit headers, the access log, the body bound.

Pure ASGI (no BaseHTTPMiddleware) so streaming bodies and the threadpool are untouched.
``ServiceMiddleware`` sits outermost: it sees every answer, including the 500 it builds
itself for an unexpected exception, so headers and metrics cover errors too.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jamey_engine.observability.metrics import ServiceMetrics
from jamey_engine.service.errors import error_response, handle_error

if TYPE_CHECKING:
    from jamey_engine.engine import Engine

# The access log is a channel of its own (one line per request), named for its package.
access_log = logging.getLogger("jamey_engine.service.access")
log = logging.getLogger(__name__)

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RateLimitDefaults:
    """Header values for answers that consumed no rate-limit budget (unkeyed or rejected early)."""

    def __init__(self, limit: int, window_seconds: int) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.headers = [
            (b"ratelimit-limit", str(limit).encode()),
            (b"ratelimit-remaining", str(limit).encode()),
            (b"ratelimit-reset", str(window_seconds).encode()),
        ]

    @classmethod
    def from_limit(cls, text: str) -> RateLimitDefaults:
        """Defaults from a limit such as ``60/minute``: full budget, reset after one window."""
        from limits import parse

        item = parse(text)
        return cls(int(item.amount), int(item.get_expiry()))


def rate_limit_headers(decision: Any, defaults: RateLimitDefaults) -> list[tuple[bytes, bytes]]:
    """``RateLimit-Limit/Remaining/Reset`` (raw ASGI headers) from a Decision, or the defaults."""
    if decision is None:
        return defaults.headers
    reset = max(0, math.ceil(float(decision.reset_at) - time.time()))
    return [
        (b"ratelimit-limit", str(int(decision.limit)).encode()),
        (b"ratelimit-remaining", str(max(0, int(decision.remaining))).encode()),
        (b"ratelimit-reset", str(reset).encode()),
    ]


def route_template(app: Any, scope: Scope) -> str:
    """The matched route's path template, or "unmatched" (keeps label cardinality bounded)."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return str(route.path)
    # Answered before routing (413 on Content-Length) or by a 405: find the template anyway.
    router = getattr(app, "router", None)
    for candidate in getattr(router, "routes", ()):
        try:
            match, _ = candidate.matches(scope)
        except Exception:  # a malformed path must not break the metrics
            log.debug("route matching failed for the metrics label", exc_info=True)
            continue
        if match in (Match.FULL, Match.PARTIAL) and hasattr(candidate, "path"):
            return str(candidate.path)
    return "unmatched"


class ServiceMiddleware:
    """Counts and times every request, adds the headers every answer carries, logs one line each."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServiceMetrics,
        defaults: RateLimitDefaults,
        fastapi_app: Any,
        engine: Engine | None = None,
    ) -> None:
        self.app = app
        self.engine = engine
        self.metrics = metrics
        self.defaults = defaults
        self.fastapi_app = fastapi_app
        # Bounded: methods x route templates (plus "unmatched") x statuses.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 500, "started": False}
        scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                state["status"] = message["status"]
                request_state = scope.get("state") or {}
                # Appended raw: the app itself never sets these, and it is cheaper than MutableHeaders.
                extra = [
                    *SECURITY_HEADERS,
                    *rate_limit_headers(request_state.get("ratelimit"), self.defaults),
                ]
                if scope["path"].startswith("/admin"):
                    extra.append((b"cache-control", b"no-store"))
                key = request_state.get("key")
                if key is not None and getattr(key, "legacy", False):
                    extra.append((b"deprecation", b"true"))
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if state["started"]:
                raise
            response = await handle_error(Request(scope), exc)
            await response(scope, receive, send_with_headers)
        finally:
            self._record(scope, state["status"], time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
        route = route_template(self.fastapi_app, scope)
        children = self._children.get((method, route, status))
        if children is None:  # label lookups cost more than the update: keep the children
            children = (
                self.metrics.http_requests.labels(method, route, str(status)),
                self.metrics.http_duration.labels(method, route),
            )
            self._children[(method, route, status)] = children
        children[0].inc()
        children[1].observe(elapsed)
        key = (scope.get("state") or {}).get("key")
        if key is not None and self.engine is not None:  # a key was verified, so keys is built
            self.engine.keys.usage.count(key.id, status)
        if access_log.isEnabledFor(logging.INFO):
            client = scope.get("client")
            # The raw path without the query string, the key's public name: never a secret.
            access_log.info(
                '%s "%s %s" %d %.1fms key=%s',
                client[0] if client else "-",
                method,
                scope["path"],
                status,
                elapsed * 1000,
                getattr(key, "name", "-") if key is not None else "-",
            )


class BodySizeLimit:
    """Refuse bodies over ``max_bytes`` with 413: at once from Content-Length, or while reading."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"body: larger than the {self.max_bytes}-byte limit (JAMEY_MAX_BODY_BYTES)"
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await error_response(400, "Content-Length: not a number")(scope, receive, send)
                    return
                if declared > self.max_bytes:
                    await error_response(413, message)(scope, receive, send)
                    return
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, message)
            return msg

        await self.app(scope, bounded_receive, send)
