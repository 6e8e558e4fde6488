"""Key authentication, scope checks and rate limits for keyed routes.

A key comes as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The order of checks:
1. verify the key (KeyManager.verify, cached for ``key_cache_seconds``) -> 401 when rejected;
2. charge the key's rate limit, then the global one -> 429 with Retry-After when over;
3. check the scope -> 403 (``admin`` implies every scope).
The Decision of step 2 is kept on the request so the middleware can send RateLimit-* headers on
every answer, the 403 included. Verification and the limiter run in one worker-thread hop, so a
cache miss (a database query) or a Redis round trip never stalls the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.concurrency import run_in_threadpool

from jamey_engine.errors import Forbidden, KeyRejected, RateLimited
from jamey_engine.metrics import ServiceMetrics

if TYPE_CHECKING:
    from jamey_engine.engine import Engine
    from jamey_engine.keys import VerifiedKey

# Declared for the OpenAPI document (and /docs); the token itself is read by extract_token.
bearer_scheme = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <key>")

ADMIN = "admin"


def extract_token(request: Request) -> str:
    """The key from the request's headers; raises KeyRejected("missing"/"malformed") without one.

    ``Authorization`` wins when both headers are sent; its scheme must be Bearer.
    """
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise KeyRejected("malformed", "Authorization header: expected 'Bearer <key>'")
        return value.strip()
    api_key = request.headers.get("x-api-key")
    if api_key is not None and api_key.strip():
        return api_key.strip()
    raise KeyRejected("missing", "API key required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")


def has_scope(scopes: tuple[str, ...] | list[str], needed: str | None) -> bool:
    """True when ``scopes`` grant ``needed`` (``admin`` grants everything; None needs no scope)."""
    return needed is None or needed in scopes or ADMIN in scopes


class Authenticator:
    """Verifies keys and charges rate limits for one app, counting both in the metrics."""

    def __init__(self, engine: Engine, metrics: ServiceMetrics) -> None:
        self.engine = engine
        self.metrics = metrics

    def _verify_and_charge(self, token: str) -> tuple[VerifiedKey, Any]:
        """Blocking part, run in a worker thread: verify, then hit the limiter."""
        try:
            key = self.engine.keys.verify(token)
        except KeyRejected as err:
            self.metrics.key_verifications.labels(err.reason).inc()
            raise
        self.metrics.key_verifications.labels("ok").inc()
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
        key, decision = await run_in_threadpool(self._verify_and_charge, token)
        request.state.key = key
        request.state.ratelimit = decision
        if not decision.allowed:
            limit_scope = decision.scope or "key"
            self.metrics.rate_limited.labels(limit_scope).inc()
            which = "this key's" if limit_scope == "key" else "the service's global"
            raise RateLimited(
                f"over {which} rate limit ({decision.limit} requests); retry in {decision.retry_after}s",
                retry_after=decision.retry_after,
                scope=limit_scope,
            )
        if not has_scope(tuple(key.scopes), scope):
            granted = ", ".join(key.scopes) or "none"
            raise Forbidden(f"key {key.name!r} lacks the scope {scope!r} (it has: {granted})")
        return key


def require(scope: str | None) -> Callable[..., Awaitable[VerifiedKey]]:
    """A FastAPI dependency: the verified key of a request that holds ``scope``."""

    async def dependency(
        request: Request,
        _bearer: Annotated[Any, Security(bearer_scheme)],
        _api_key: Annotated[Any, Security(api_key_scheme)],
    ) -> VerifiedKey:
        authenticator: Authenticator = request.app.state.authenticator
        return await authenticator.authenticate(request, scope)

    dependency.__name__ = f"require_{(scope or 'key').replace(':', '_')}"
    return dependency
