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
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jamey_engine.observability.logsink import direct_sink
from jamey_engine.observability.metrics import ServiceMetrics
from jamey_engine.service.errors import error_response, handle_error
from jamey_engine.service.routemap import route_map

if TYPE_CHECKING:
    from jamey_engine.engine import Engine

# The access log is a channel of its own (one line per request), named for its package.
ACCESS_LOG = "jamey_engine.service.access"
access_log = logging.getLogger(ACCESS_LOG)

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
# Set on a request the fast path's own copies of these middleware already wrap (fastpath.py).
WRAPPED = "jamey.wrapped"
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
        # path_format: the template without convertors, as the OpenAPI document names it.
        return str(getattr(route, "path_format", None) or route.path)
    # Answered before routing (413 on Content-Length) or with no route set: find the template.
    return route_map(app).template(scope) or "unmatched"


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
        if scope["type"] != "http" or WRAPPED in scope:  # WRAPPED: the fast path's copy ran
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 500, "started": False}
        scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                state["status"] = message["status"]
                message["headers"] = [*message.get("headers", ()), *self.answer_headers(scope)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if state["started"]:
                raise
            response = await handle_error(Request(scope), exc)
            await response(scope, receive, send_with_headers)
        finally:
            self.record(scope, state["status"], time.perf_counter() - started)

    def answer_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        """The headers this layer adds to every answer (raw, after the app's own): security,
        rate limits, no-store on /admin, Deprecation for a legacy key."""
        request_state = scope.get("state") or {}
        # Appended raw: the app itself never sets these, and it is cheaper than MutableHeaders.
        extra = [*SECURITY_HEADERS, *rate_limit_headers(request_state.get("ratelimit"), self.defaults)]
        if scope["path"].startswith("/admin"):
            extra.append((b"cache-control", b"no-store"))
        key = request_state.get("key")
        if key is not None and getattr(key, "legacy", False):
            extra.append((b"deprecation", b"true"))
        return extra

    def record(self, scope: Scope, status: int, elapsed: float) -> None:
        """Count and time one answered request, its key's usage, and its access-log line."""
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
            line = '{} "{} {}" {} {:.1f}ms key={}'.format(
                client[0] if client else "-",
                method,
                scope["path"],
                status,
                elapsed * 1000,
                getattr(key, "name", "-") if key is not None else "-",
            )
            sink = direct_sink(access_log, logging.INFO)
            if sink is not None:  # the line the record would make, without making the record
                sink.line(ACCESS_LOG, logging.INFO, line)
            else:
                access_log.info("%s", line)


# Over-limit bytes read and discarded after a 413, so the client finishes sending and reads it.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
DRAIN_TIMEOUT_SECONDS = 10.0
# uvicorn closes the connection after an answer carrying this, instead of reading (and
# discarding) whatever the client still sends, without bound, to keep the connection alive.
CLOSE = {"Connection": "close"}


class BodySizeLimit:
    """Refuse bodies over ``max_bytes`` with 413: at once from Content-Length, or while reading.

    Guarantees: the app never sees more than ``max_bytes`` of body, so nothing over the limit is
    stored. Every client gets the 413 JSON: a client that sent ``Expect: 100-continue`` is
    answered before it sends the body (and sends none); any other client is still sending when
    the 413 is ready, so the answer is sent and then up to ``drain_bytes`` more of its body
    (within ``DRAIN_TIMEOUT_SECONDS``) are read and discarded before the answer ends. Closing
    with unread data would make the kernel reset the connection, and a client that reads only
    after sending (urllib) would see "connection reset" or "broken pipe" instead of the 413.
    Then the connection is closed (the 413 says ``Connection: close``): the service reads at
    most ``max_bytes + drain_bytes`` of any request.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, drain_bytes: int = DRAIN_LIMIT_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or WRAPPED in scope:  # WRAPPED: the fast path's copy ran
            await self.app(scope, receive, send)
            return
        message = f"body: larger than the {self.max_bytes}-byte limit (JAMEY_MAX_BODY_BYTES)"
        expects_continue = False
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await error_response(400, "Content-Length: not a number")(scope, receive, send)
                    return
            elif name == b"expect" and value.lower() == b"100-continue":
                expects_continue = True
        state = {"received": 0, "complete": declared == 0, "over": False, "answered": False}

        async def draining_send(msg: Message) -> None:
            # The last part of a 413 to a client still sending: end the answer only after
            # reading (and dropping) the rest of its body, up to the bound.
            if msg["type"] == "http.response.start":
                state["answered"] = True
            if msg["type"] == "http.response.body" and not msg.get("more_body") and state["over"]:
                if msg.get("body"):
                    await send({"type": "http.response.body", "body": msg["body"], "more_body": True})
                if not state["complete"]:
                    await self._drain(receive, state)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(msg)

        if declared is not None and declared > self.max_bytes:
            state["over"] = not expects_continue  # with 100-continue the body never comes
            await error_response(413, message, CLOSE)(scope, receive, draining_send)
            return

        async def bounded_receive() -> Message:
            msg = await receive()
            if msg["type"] == "http.request":
                state["received"] += len(msg.get("body", b""))
                if not msg.get("more_body", False):
                    state["complete"] = True
                if state["received"] > self.max_bytes:
                    state["over"] = True
                    raise HTTPException(413, message, headers=CLOSE)
            return msg

        try:
            await self.app(scope, bounded_receive, draining_send)
        except HTTPException:
            # An app without Starlette's exception layer in between (the fast path) lets the
            # 413 raised above out: answer it here, so it drains as the routes' 413 does.
            if not state["over"] or state["answered"]:
                raise
            await error_response(413, message, CLOSE)(scope, receive, draining_send)

    async def _drain(self, receive: Receive, state: dict[str, Any]) -> None:
        import anyio

        drained = 0
        with anyio.move_on_after(DRAIN_TIMEOUT_SECONDS):
            while drained <= self.drain_bytes:
                msg = await receive()
                if msg["type"] != "http.request":
                    return
                drained += len(msg.get("body", b""))
                if not msg.get("more_body", False):
                    state["complete"] = True
                    return
