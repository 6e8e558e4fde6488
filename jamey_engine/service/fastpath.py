"""The hot path: keyed ``GET /memories/search`` and ``POST /memories`` without the framework.

Profiled under load (docs/benchmarks.md, "Where a request's time goes"), a small keyed search or store spent
most of the event loop's time in the framework around the handler: uvicorn's proxy-header
layer, FastAPI's body-limit and telemetry layers, Starlette's error layers, the router's match
over every route, dependency solving and parameter validation. These two requests, in the
well-formed shape clients send, are answered here instead: the same key check and limits
(``Authenticator``), the same store calls and JSON (``routes_memory.search_results`` and
``store_one``), inside the same ``ServiceMiddleware`` (metrics under the route's template,
headers, access log) and ``BodySizeLimit`` (left out where the request's framing already bounds
its body: ``body_bounded``).

The contract stays FastAPI's. A request is taken here only when this module can see at a glance
that the route would accept it (known parameters, each once; a layer of the five; ``limit`` as
plain digits in range; non-blank text with a visible ASCII character; JSON with exactly
``layer`` and ``content``). Anything else (a ``since``/``until`` window, a timestamp, an odd
encoding, a bad value) is handed to the FastAPI route, which answers it as documented, its
errors included. A store the fast path authenticated before reading the body is handed on marked
as authenticated, so the key is neither checked nor charged twice.

Under ``jamey serve`` the fast path goes one step further: its HTTP protocol
(service/http_protocol.py, ``ServiceProtocol``) hands it such a request whole, body read, and
writes the ``Response`` it returns (``FastPath.answer``) in one socket call, without uvicorn's
ASGI messages and without the middleware's wrappers: the same headers and records come from
``ServiceMiddleware.answer_headers`` and ``ServiceMiddleware.record``. Any ASGI server (granian,
the tests' clients) still gets the ASGI fast path below.

Each request the fast path answers itself (its refusals included), and not one it hands on, is
counted in ``http_fastpath_requests_total{route}``: the proof that a request took this path.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jamey_engine.memory.layers import LAYERS, MAX_QUERY_CHARS, ORDERS
from jamey_engine.memory.model import DEFAULT_LIMIT, MAX_LIMIT
from jamey_engine.service.errors import handle_error
from jamey_engine.service.middleware import WRAPPED, BodySizeLimit, ServiceMiddleware
from jamey_engine.service.routes_memory import search_results, store_one

if TYPE_CHECKING:
    from jamey_engine.engine import Engine

SEARCH_PARAMS = frozenset({"layer", "q", "limit", "order"})
LIMIT_DIGITS = re.compile(r"[1-9][0-9]{0,3}")
# A visible ASCII character: text holding one is non-blank under any regex engine's \S (the
# schema's pattern), so the fast path never accepts what the route's validation would refuse.
VISIBLE = re.compile(r"[!-~]")
JSON_TYPES = frozenset({b"application/json", b"application/json; charset=utf-8"})

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


class RouteLabel(NamedTuple):
    """What the metrics read of ``scope["route"]``: the route's path template."""

    path: str


class FastPath:
    """The fast handlers of one app, each with its FastAPI route (the fallback and the label)."""

    def __init__(self, app: Any, engine: Engine, wrap: Callable[[ASGIApp], ServiceMiddleware]) -> None:
        self.app = app
        self.engine = engine
        self.routes: dict[tuple[str, str], tuple[RouteLabel, Handler]] = {}
        # Counted when a handler knows it answers (before it answers: a client may read the
        # metrics as soon as it has the response).
        counter = app.state.metrics.fastpath_requests
        self._searches = counter.labels("/memories/search")
        self._stores = counter.labels("/memories")
        for method, path, endpoint, handler in (
            ("GET", "/memories/search", "search_memories", self._search),
            ("POST", "/memories", "store_memory", self._store),
        ):
            if app.url_path_for(endpoint) != path:  # the route moved: this table must follow it
                raise RuntimeError(f"fast path: {endpoint} is not served at {path}")
            self.routes[(method, path)] = (RouteLabel(path), handler)
        # Two stacks: with the body bound, and without it for a request whose framing already
        # bounds its body (see ``body_bounded``): the HTTP parser delivers no more than a
        # declared Content-Length, so BodySizeLimit's per-request closures would check nothing.
        self.max_body_bytes = engine.settings.max_body_bytes
        self.stack = wrap(BodySizeLimit(self._dispatch, self.max_body_bytes))
        # The lean stack is the middleware alone: its headers and records also serve the answers
        # the HTTP protocol writes whole (``answer``).
        self.middleware = wrap(self._dispatch)

    def takes_whole(self, scope: Scope) -> bool:
        """May the HTTP protocol hand this request over whole (``answer``)? One of the fast
        routes, with a body its framing bounds (``body_bounded``), so reading it all first
        reads no more than the body limit allows."""
        return (scope["method"], scope["path"]) in self.routes and body_bounded(
            scope["headers"], self.max_body_bytes
        )

    async def answer(self, scope: Scope, body: bytes) -> Response | None:
        """The answer to a request ``takes_whole`` took, its ``body`` read: a Response with its
        whole body (refusals and failures too, as ``handle_error`` words them), or None when
        the app must answer it (a shape this path leaves to the route; nothing was charged).
        The caller adds ``self.middleware.answer_headers`` and calls ``self.middleware.record``."""
        scope["app"] = self.app
        route, _ = self.routes[(scope["method"], scope["path"])]
        try:
            if route.path == "/memories":
                if _content_type(scope) not in JSON_TYPES:
                    return None
                fields = _store_fields(body, self.engine.settings.max_content_bytes)
                if fields is None:
                    return None
                scope[WRAPPED] = True
                scope["route"] = route
                self._stores.inc()
                await self.app.state.authenticator.authenticate(Request(scope), "memory:write")
                return await store_one(self.engine.memory, fields[0], fields[1], None)
            params = _search_params(scope["query_string"])
            if params is None:
                return None
            scope[WRAPPED] = True
            scope["route"] = route
            self._searches.inc()
            return await self._searched(scope, params)
        except Exception as exc:
            return await handle_error(Request(scope), exc)

    def takes(self, scope: Scope) -> bool:
        """Is this a request for a fast handler (and not one it already handed on)?"""
        return (
            scope["type"] == "http"
            and WRAPPED not in scope
            and (scope["method"], scope["path"]) in self.routes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.app
        stack = self.middleware if body_bounded(scope["headers"], self.max_body_bytes) else self.stack
        await stack(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[WRAPPED] = True  # from here on, the app's own copies of the middleware stand aside
        route, handler = self.routes[(scope["method"], scope["path"])]
        scope["route"] = route  # the metrics' route label, as the router would set it (its path)
        await handler(scope, receive, send)

    async def _fallback(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The FastAPI app answers (its copies of the middleware pass the request through)."""
        del scope["route"]
        await self.app(scope, receive, send)

    async def _search(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = _search_params(scope["query_string"])
        if params is None:
            await self._fallback(scope, receive, send)
            return
        self._searches.inc()
        response = await self._searched(scope, params)
        await response(scope, receive, send)

    async def _searched(self, scope: Scope, params: dict[str, str]) -> Response:
        await self.app.state.authenticator.authenticate(Request(scope), "memory:read")
        return await search_results(
            self.engine.memory,
            params["layer"],
            params["q"],
            int(params.get("limit", DEFAULT_LIMIT)),
            params.get("order", "score"),
        )

    async def _store(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _content_type(scope) not in JSON_TYPES:
            await self._fallback(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            await self.app.state.authenticator.authenticate(request, "memory:write")  # before the body
        except Exception:
            self._stores.inc()  # the refusal is answered from here
            raise
        body = await _read_body(receive)
        fields = _store_fields(body, self.engine.settings.max_content_bytes)
        if fields is None:
            await self._fallback(scope, _replay(body, receive), send)
            return
        self._stores.inc()
        response = await store_one(self.engine.memory, fields[0], fields[1], None)
        await response(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    """The whole request body (as ``Request.body`` reads it, without its stream machinery)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def body_bounded(headers: list[tuple[bytes, bytes]], max_bytes: int) -> bool:
    """True when a request's framing alone keeps its body within ``max_bytes``: no
    Transfer-Encoding (a chunked body's size is known only once read) and either no
    Content-Length (no body at all) or one, in plain digits, of at most ``max_bytes``.
    Anything else (a larger or malformed Content-Length, several of them, chunked) goes through
    ``BodySizeLimit``, which answers it as the routes do."""
    declared = None
    for name, value in headers:
        if name == b"transfer-encoding":
            return False
        if name == b"content-length":
            if declared is not None or not value.isdigit():
                return False
            declared = int(value)
    return declared is None or declared <= max_bytes


def _content_type(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bytes(value.lower())
    return None


def _plain_text(value: object, longest: int) -> bool:
    return type(value) is str and 0 < len(value) <= longest and VISIBLE.search(value) is not None


def _search_params(query_string: bytes) -> dict[str, str] | None:
    """The search's parameters when the route surely accepts them as they are; else None."""
    # Parsed as Starlette parses a query string, so the values are the ones the route would see.
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    params = dict(pairs)
    if len(params) != len(pairs) or not params.keys() <= SEARCH_PARAMS:
        return None
    if params.get("layer") not in LAYERS or not _plain_text(params.get("q"), MAX_QUERY_CHARS):
        return None
    limit = params.get("limit")
    if limit is not None and not (LIMIT_DIGITS.fullmatch(limit) and int(limit) <= MAX_LIMIT):
        return None
    if params.get("order", "score") not in ORDERS:
        return None
    return params


def _store_fields(body: bytes, max_chars: int) -> tuple[str, str] | None:
    """(layer, content) when the body is exactly a plain store the route accepts; else None."""
    try:
        # orjson: strict UTF-8 JSON, ~8x quicker than json.loads. What it refuses and json.loads
        # might take (a UTF-16 body, NaN, nesting past 1,024) goes to the route, which answers it.
        data = orjson.loads(body)
    except ValueError:
        return None
    if type(data) is not dict or data.keys() != {"layer", "content"}:
        return None
    layer, content = data["layer"], data["content"]
    if type(layer) is not str or layer not in LAYERS or not _plain_text(content, max_chars):
        return None
    return layer, content


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives ``body`` again, then whatever the connection sends next."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
