"""The service's worker threads, in three pools that cannot starve one another.

anyio runs blocking work in worker threads, at most 40 at once under its default limiter, which
every plain route and ``run_in_threadpool`` share. Two kinds of work get limiters of their own:

- key checks (``KEY_CHECK_SLOTS``): a key that is not in the cache is verified in a thread; with
  its own limiter it never waits behind routes that hold threads, so a new key authenticates
  while others are busy;
- admin operations (``ADMIN_SLOTS``): retention plans and applies, which flush, prune and
  commit layer by layer, run a few at a time and queue beyond that, so one key sending forty of
  them holds four threads, not forty.

One ``ServiceLimiters`` per app (its limiters bind to the app's event loop on first use).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from starlette.requests import Request

#: Key checks in worker threads at once (on top of anyio's default 40).
KEY_CHECK_SLOTS = 16
#: Admin operations (retention plan and apply) in worker threads at once.
ADMIN_SLOTS = 4

T = TypeVar("T")


class ServiceLimiters:
    """The key-check and admin limiters of one app."""

    def __init__(self, key_checks: int = KEY_CHECK_SLOTS, admin: int = ADMIN_SLOTS) -> None:
        self.key_checks = anyio.CapacityLimiter(key_checks)
        self.admin = anyio.CapacityLimiter(admin)


async def run_admin(request: Request, function: Callable[[], T]) -> T:
    """Run ``function`` in a worker thread under the app's admin limiter (waiting for a slot)."""
    limiters: ServiceLimiters = request.app.state.limiters
    return await anyio.to_thread.run_sync(function, limiter=limiters.admin)
