"""Key authentication, scope checks and rate limits for keyed routes.

A key comes as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The order of checks:
1. verify the key (KeyManager.verify, cached for ``key_cache_seconds``) -> 401 when rejected;
2. charge the key's rate limit, then the global one -> 429 with Retry-After when over;
3. check the scope -> 403 (``admin`` implies every scope).
The Decision of step 2 is kept on the request so the middleware can send RateLimit-* headers on
every answer, the 403 included. A cache miss (a database query) or a Redis round trip runs in a
worker thread, so it never stalls the event loop. Keyed routes use ``KeyedRoute``, which runs
all of this before the request body is read.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from jamey_engine.errors import KeyRejected, RateLimited
from jamey_engine.keys.scopes import has_scope, require_scope
from jamey_engine.observability.metrics import ServiceMetrics
from jamey_engine.service.pools import ServiceLimiters

if TYPE_CHECKING:
    from jamey_engine.engine import Engine
    from jamey_engine.keys import VerifiedKey


def extract_token(request: Request) -> str:
    """The key from the request's headers; raises KeyRejected("missing"/"malformed") without one.

    ``Authorization`` wins when both headers are sent; its scheme must be Bearer.
    """
    authorization = api_key = None
    for name, value in request.scope["headers"]:  # raw headers: cheaper than building Headers
        if name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
        elif name == b"x-api-key" and api_key is None:
            api_key = value.decode("latin-1")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise KeyRejected("malformed", "Authorization header: expected 'Bearer <key>'")
        return token.strip()
    if api_key is not None and api_key.strip():
        return api_key.strip()
    raise KeyRejected("missing", "API key required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")


class Authenticator:
    """Verifies keys and charges rate limits for one app, counting both in the metrics.

    A worker-thread hop costs more than the check itself (~100 us against ~30 us), so when the
    KeyManager's cache can answer alone (``verify_cached``: no database), the check runs on the
    event loop: the limiter decides in memory, or with Redis counters over an asyncio connection
    (``RateLimiter.ahit``). The other cases (first use, an expired cache entry) run in a worker thread, under the key-check limiter of its own
    (service/pools.py), so it never waits behind busy routes. The batched last-used write is kept off the
    event loop by ``flush_in_background``.
    """

    def __init__(
        self, engine: Engine, metrics: ServiceMetrics, limiters: ServiceLimiters | None = None
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.limiters = limiters or ServiceLimiters()
        self._ok = metrics.key_verifications.labels("ok")

    def _cached(self, token: str) -> VerifiedKey | None:
        try:
            key = self.engine.keys.verify_cached(token)
        except KeyRejected as err:
            self.metrics.key_verifications.labels(err.reason).inc()
            raise
        if key is not None:
            self._ok.inc()
        return key

    def _verify_and_charge(self, token: str) -> tuple[VerifiedKey, Any]:
        """Blocking part, run in a worker thread: verify, then hit the limiter."""
        try:
            key = self.engine.keys.verify(token)
        except KeyRejected as err:
            self.metrics.key_verifications.labels(err.reason).inc()
            raise
        self._ok.inc()
        decision = self.engine.limiter.hit(key.id, key.rate_limit)
        return key, decision

    async def authenticate(self, request: Request, scope: str | None) -> VerifiedKey:
        """Verify the request's key, charge its limits and check ``scope``.

        Raises KeyRejected (401), RateLimited (429, with retry_after and scope) or Forbidden (403).
        """
        try:
            token = extract_token(request)
        except KeyRejected as err:
            self.metrics.key_verifications.labels(err.reason).inc()
            raise
        cached = self._cached(token)
        if cached is not None:
            # On the loop: in memory a lock held for microseconds, with Redis one asyncio round trip.
            key, decision = cached, await self.engine.limiter.ahit(cached.id, cached.rate_limit)
        else:
            # Under its own limiter: never queued behind routes holding the shared threads.
            key, decision = await anyio.to_thread.run_sync(
                self._verify_and_charge, token, limiter=self.limiters.key_checks
            )
        # Into the request's state dict directly (what request.state wraps; the middleware reads it).
        state = request.scope.setdefault("state", {})
        state["key"] = key
        state["ratelimit"] = decision
        if not decision.allowed:
            limit_scope = decision.scope or "key"
            self.metrics.rate_limited.labels(limit_scope).inc()
            which = "this key's" if limit_scope == "key" else "the service's global"
            raise RateLimited(
                f"over {which} rate limit ({decision.limit} requests); retry in {decision.retry_after}s",
                retry_after=decision.retry_after,
                scope=limit_scope,
            )
        if not has_scope(key.scopes, scope):
            require_scope(key.name, key.scopes, scope)
        # The fast path (service/fastpath.py) may hand a request it authenticated on to the
        # route: the route then neither checks the key again nor charges its limits twice.
        state[AUTHENTICATED_FOR] = scope
        return key


async def flush_in_background(engine: Engine, every: float, metrics: ServiceMetrics | None = None) -> None:
    """Write the keys' batched last-used times and usage counts from a worker thread every
    ``every`` seconds (and, with several workers, copy this worker's own counts into the shared
    metrics).

    Keys checked on the event loop (``verify_cached``) only note their last use in memory; this
    writes it, off the loop. Runs until cancelled.
    """
    import anyio

    while True:
        await anyio.sleep(every)
        await run_in_threadpool(engine.flush_key_usage)
        if metrics is not None and metrics.mirror is not None:
            await run_in_threadpool(metrics.sync_process_state)


SCOPE_FIELD = "x-jamey-scope"
# The request state's note of the scope a request was authenticated for (set only on success).
AUTHENTICATED_FOR = "authenticated_for"
NOT_YET = object()
ANY_KEY = "any valid key"
SECURITY_SCHEMES = {
    "bearerKey": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
    "headerKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "X-API-Key: <key>"},
}


def needs(scope: str | None) -> dict[str, Any]:
    """``openapi_extra`` of a keyed route: the scope it needs (None: any valid key) and its security."""
    return {SCOPE_FIELD: scope or ANY_KEY, "security": [{"bearerKey": []}, {"headerKey": []}]}


class KeyedRoute(APIRoute):
    """A route that authenticates before anything else runs: before the body is read or parsed,
    and without FastAPI's dependency machinery (a third of the cost of a keyed request).

    The scope comes from the route's ``openapi_extra`` (built by :func:`needs`), so the policy
    sits on the route and shows in the OpenAPI document. A keyed route without one is refused
    at startup. The endpoint finds the verified key in ``request.state.key``.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        declared = (self.openapi_extra or {}).get(SCOPE_FIELD)
        if declared is None:
            raise RuntimeError(f"keyed route {self.path} declares no scope; pass openapi_extra=needs(...)")
        scope = None if declared == ANY_KEY else str(declared)

        async def authenticated(request: Request) -> Response:
            if request.scope.get("state", {}).get(AUTHENTICATED_FOR, NOT_YET) != scope:
                await request.app.state.authenticator.authenticate(request, scope)
            return await handler(request)

        return authenticated


def current_key(request: Request) -> VerifiedKey:
    """The verified key of a request to a keyed route."""
    return request.scope["state"]["key"]


def engine_of(request: Request) -> Engine:
    """The Engine the app was created with."""
    engine: Engine = request.app.state.engine
    return engine
