"""Per-key and global rate limits on the ``limits`` library, in memory or in Redis.

Strategy: the **moving window** (``MovingWindowRateLimiter``). It keeps one timestamp per
admitted request and admits a request only when fewer than N were admitted in the last window,
so "5/minute" never lets 10 through across a window edge, as a fixed window can. A decision
checks and charges the key's limit and then the global limit in one atomic step (one lock in
memory, one Lua script in Redis), so 100 racing threads, or several processes sharing Redis,
admit exactly 5. In memory a limit above ``EXACT_UP_TO`` per window counts in fixed sub-buckets
(``SlidingBuckets``: bounded memory, never more than the limit in a window).

In Redis, each process admits most requests from **leases**: hits reserved in Redis in one
script call and spent locally (``ratelimit_lease`` says why this stays exact, and
``ratelimit_leased`` holds the limiter's side). ``JAMEY_RATE_LIMIT_LEASE=0`` decides every
request in Redis with ``ACQUIRE_PAIR_LUA`` (one round trip each) on limits' own lists.

When the counter storage (Redis) cannot be reached, ``settings.rate_limit_failure`` decides:

* ``open``: admit the request; ``Decision.allowed`` is True, ``Decision.scope`` is None and
  ``Decision.degraded`` is True;
* ``closed``: raise :class:`~jamey_engine.errors.Unavailable` (HTTP 503), not a 429: the
  client did nothing wrong.

Either way ``storage_failures`` counts it (the service exports it as a metric). After a failure
the storage is not tried again for ``RETRY_AFTER_FAILURE`` seconds, so an outage does not add a
connection attempt to every request.

On the event loop: ``await limiter.ahit(...)`` decides without a thread. With Redis counters it
sends the same script (``ACQUIRE_PAIR_LUA``) through an asyncio Redis client (``redis.asyncio``,
one per event loop), so a service request with a cached key never hops to a worker thread for
its rate-limit decision; in memory it is the same call as ``hit``. Same decisions, same
failure modes, same timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import weakref
from typing import Any, cast
from urllib.parse import urlsplit

import limits
from limits.storage import RedisStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from jamey_engine.config import Settings
from jamey_engine.errors import InvalidInput, Unavailable
from jamey_engine.keys.ratelimit_decision import Decision
from jamey_engine.keys.ratelimit_lease import LEASE_LUA, RELEASE_LUA, LeaseBook
from jamey_engine.keys.ratelimit_leased import LeaseDecisions
from jamey_engine.keys.ratelimit_storage import (  # re-exported
    ACQUIRE_PAIR_LUA,
    PipelinedDecisions,
    SteadyMemoryStorage,
)
from jamey_engine.limit_text import MAX_GLOBAL_LIMIT, MAX_KEY_LIMIT, parse_limit  # re-exported
from jamey_engine.redact import redact_url

__all__ = [
    "ACQUIRE_PAIR_LUA",
    "MAX_GLOBAL_LIMIT",
    "MAX_KEY_LIMIT",
    "REDIS_TIMEOUT_SECONDS",
    "RETRY_AFTER_FAILURE",
    "Decision",
    "PipelinedDecisions",
    "RateLimiter",
    "SteadyMemoryStorage",
    "parse_limit",
]

log = logging.getLogger(__name__)

KEY_PREFIX = "jamey"
RETRY_AFTER_FAILURE = 1.0
REDIS_TIMEOUT_SECONDS = 0.5
#: Hits a process may reserve per lease of a Redis counter (JAMEY_RATE_LIMIT_LEASE's default).
DEFAULT_LEASE = 100
_COUNTER_KEY_CACHE = 100_000


class RateLimiter(LeaseDecisions):
    """Checks each request against its key's limit, then the global limit.

    Thread-safe. Build with :meth:`from_settings`.
    """

    def __init__(
        self, storage_url: str, global_limit: str, failure_mode: str = "open", lease: int = DEFAULT_LEASE
    ) -> None:
        if failure_mode not in ("open", "closed"):
            raise InvalidInput(f"rate-limit failure mode {failure_mode!r} must be open or closed")
        if isinstance(lease, bool) or not isinstance(lease, int) or lease < 0:
            raise InvalidInput(f"rate-limit lease {lease!r} must be a whole number, zero or above")
        self.storage_url = storage_url
        self.failure_mode = failure_mode
        self.global_limit = parse_limit(global_limit, field="global rate limit", most=MAX_GLOBAL_LIMIT)
        self.storage_failures = 0
        self._parsed: dict[str, limits.RateLimitItem] = {}
        self._failed_until = 0.0
        self._lock = threading.Lock()
        self._storage: Storage = self._make_storage(storage_url)
        # memory:// always builds a SteadyMemoryStorage (see _make_storage); None means Redis.
        self._memory = self._storage if isinstance(self._storage, SteadyMemoryStorage) else None
        self._global_expiry = self.global_limit.get_expiry()
        self._strategy = MovingWindowRateLimiter(self._storage)  # checks moving-window support
        self._global_counter = self.global_limit.key_for("global")
        self._counter_keys: dict[tuple[str, str], str] = {}
        if self._memory is None:
            redis = cast(RedisStorage, self._storage)
            self._redis = redis
            # register_script only hashes the text (no round trip); the Script sends EVALSHA,
            # and loads the script once more itself if the server lost it (a restart).
            self._acquire_pair = redis.get_connection().register_script(ACQUIRE_PAIR_LUA.encode())
            self._redis_errors = redis.base_exceptions
            self._global_redis_key = redis.prefixed_key(self._global_counter)
            self._lease_script = redis.get_connection().register_script(LEASE_LUA.encode())
            self._release_script = redis.get_connection().register_script(RELEASE_LUA.encode())
            self._global_lease_keys = self._lease_keys(self._global_counter)
        # Leases of Redis counters (see ratelimit_lease): None in memory or with lease 0, where
        # every decision is ACQUIRE_PAIR_LUA's.
        self.lease = lease
        self._book = LeaseBook() if self._memory is None and lease > 0 else None
        self._releaser: threading.Thread | None = None
        self._closed = False
        # The asyncio clients of ahit, one per event loop (a client's connections belong to the
        # loop that opened them); None when the URL's scheme has no asyncio client here.
        self._async_url = self._asyncio_url(storage_url) if self._memory is None else None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._async_errors: tuple[type[Exception], ...] = (OSError, asyncio.TimeoutError)
        if self._memory is None:
            from redis.exceptions import RedisError

            self._async_errors += (RedisError,)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        """A limiter on ``settings.rate_limit_storage`` with the global limit and failure mode."""
        return cls(
            settings.rate_limit_storage,
            settings.global_rate_limit,
            settings.rate_limit_failure,
            settings.rate_limit_lease,
        )

    @staticmethod
    def _make_storage(url: str) -> Storage:
        options: dict[str, float | str | bool] = {}
        scheme = urlsplit(url).scheme
        if scheme == "redis+cluster":
            # ACQUIRE_PAIR_LUA touches the key's and the global counter in one script, which a
            # cluster refuses (CROSSSLOT) unless both live on one node.
            raise InvalidInput(f"rate-limit storage {redact_url(url)!r}: Redis Cluster is not supported")
        if scheme.startswith("redis"):
            options = {
                "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                "socket_timeout": REDIS_TIMEOUT_SECONDS,
                "key_prefix": KEY_PREFIX,
            }
        elif scheme != "memory":
            raise InvalidInput(f"rate-limit storage {redact_url(url)!r} must be memory:// or a redis:// URL")
        else:
            return SteadyMemoryStorage(url, wrap_exceptions=True)
        return cast(Storage, storage_from_string(url, wrap_exceptions=True, **options))

    @staticmethod
    def _asyncio_url(url: str) -> str | None:
        """The URL for ``redis.asyncio.from_url`` (as limits maps it for the blocking client)."""
        scheme = urlsplit(url).scheme
        if scheme in ("redis", "rediss", "unix"):
            return url
        if scheme == "redis+unix":
            return url.replace("redis+unix", "unix", 1)
        return None  # redis+sentinel and others: ahit runs hit in a worker thread

    def _batcher(self) -> PipelinedDecisions:
        loop = asyncio.get_running_loop()
        batcher = self._async.get(loop)
        if batcher is None:
            import redis.asyncio

            client = redis.asyncio.from_url(
                cast(str, self._async_url),
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
            )
            script = ACQUIRE_PAIR_LUA if self._book is None else LEASE_LUA
            batcher = self._async[loop] = PipelinedDecisions(client, script)
        return batcher

    async def ahit(self, key_id: str, limit: str) -> Decision:
        """``hit`` for the event loop: the same decision, without blocking it on Redis.

        Redis counters are decided over an asyncio connection (one round trip, the same script);
        memory counters as ``hit`` decides them (a lock held for microseconds). A storage URL
        with no asyncio client here (Sentinel) is decided by ``hit`` in a worker thread.
        """
        if self._memory is not None:
            return self.hit(key_id, limit)
        if self._async_url is None:
            import anyio.to_thread

            return await anyio.to_thread.run_sync(self.hit, key_id, limit)
        item = self._limit(limit)
        if self._storage_down():
            return self._storage_failed(item, None)
        counter = self._counter_key(item, limit, key_id)
        if self._book is not None:
            decision = self._spend_lease(item, counter)
            if decision is not None:
                return decision
            batcher = self._batcher()
            asking = batcher.asking.get(counter)
            if asking is not None:
                # One lease request per counter at a time: when a lease runs out under load,
                # the requests that find none wait for the one already asking and spend its
                # grant, instead of each leasing hits the others will hand back. Waited on, not
                # awaited, so a cancelled waiter does not cancel the asker's future.
                await asyncio.wait((asking,))
                decision = self._spend_lease(item, counter)
                if decision is not None:
                    return decision
                if self._storage_down():
                    return self._storage_failed(item, None)  # the asker found Redis unreachable
            mine = None  # set when this request is the one asking for the counter
            if counter not in batcher.asking:
                mine = batcher.asking[counter] = asyncio.get_running_loop().create_future()
            try:
                for force in (False, True):
                    keys, args, ask = self._lease_request(item, counter, force)
                    reply = await batcher.decide(tuple(keys), tuple(args))
                    decision = self._leased(item, counter, ask, reply)
                    if decision is not None:
                        return decision
            except self._async_errors as err:
                return self._storage_failed(item, limits.errors.StorageError(err))
            finally:
                if mine is not None:
                    del batcher.asking[counter]
                    mine.set_result(None)
            raise AssertionError("a forced lease request always decides")  # pragma: no cover
        glob = self.global_limit
        try:
            verdict, start, used = await self._batcher().decide(
                (self._redis.prefixed_key(counter), self._global_redis_key),
                (time.time(), item.amount, item.get_expiry(), glob.amount, self._global_expiry),
            )
        except self._async_errors as err:
            return self._storage_failed(item, limits.errors.StorageError(err))
        if verdict == 0 and self._failed_until:
            self._failed_until = 0.0
        return self._decision(item, int(verdict), float(start), int(used))

    def _storage_down(self) -> bool:
        """Within RETRY_AFTER_FAILURE of a storage failure: decide without trying Redis."""
        return bool(self._failed_until) and time.monotonic() < self._failed_until

    @property
    def storage_name(self) -> str:
        """The storage URL with any password hidden."""
        return redact_url(self.storage_url)

    def _limit(self, text: str) -> limits.RateLimitItem:
        item = self._parsed.get(text)
        if item is None:
            item = parse_limit(text)
            if item.amount > MAX_KEY_LIMIT:
                # A limit stored before the cap existed: counted at the cap, never above it.
                log.warning("rate limit %r is above the cap; counting %d per window", text, MAX_KEY_LIMIT)
                item = type(item)(MAX_KEY_LIMIT, item.multiples, item.namespace)
            self._parsed[text] = item
        return item

    def _counter_key(self, item: limits.RateLimitItem, limit: str, key_id: str) -> str:
        # limits derives the storage key anew on every hit; deriving it once per (limit, key)
        # takes a third off an in-memory decision.
        cache_key = (limit, key_id)
        counter = self._counter_keys.get(cache_key)
        if counter is None:
            if len(self._counter_keys) >= _COUNTER_KEY_CACHE:
                self._counter_keys.clear()
            counter = item.key_for("key", key_id)
            self._counter_keys[cache_key] = counter
        return counter

    def hit(self, key_id: str, limit: str) -> Decision:
        """Count one request of ``key_id`` against ``limit`` (e.g. ``60/minute``), then the global limit.

        A request refused by either limit counts against neither (a key whose requests the
        global limit refuses keeps its own window). Raises
        InvalidInput on a bad limit string, and Unavailable when the storage is unreachable
        and the failure mode is ``closed``.
        """
        item = self._limit(limit)
        if self._storage_down():
            return self._storage_failed(item, None)
        counter = self._counter_key(item, limit, key_id)
        if self._memory is not None:
            return self._decide_in_memory(self._memory, item, counter)
        try:
            if self._book is not None:
                return self._decide_leased(item, counter)
            return self._decide(item, counter)
        except limits.errors.StorageError as err:
            return self._storage_failed(item, err)

    def _decide_in_memory(
        self, storage: SteadyMemoryStorage, item: limits.RateLimitItem, counter: str
    ) -> Decision:
        # Both limits under the storage's one lock: "exactly N of many racing threads" holds.
        # The Decision is built inline, as _decision builds it: a call fewer per decision.
        glob = self.global_limit
        expiry = item.get_expiry()
        verdict, start, used = storage.acquire_pair(
            counter, item.amount, expiry, self._global_counter, glob.amount, self._global_expiry
        )
        if verdict == 0:
            return Decision(True, None, item.amount, max(0, item.amount - used), start + expiry, 0)
        refused, scope = (item, "key") if verdict == 1 else (glob, "global")
        reset_at = start + refused.get_expiry()
        return Decision(False, scope, refused.amount, 0, reset_at, max(1, math.ceil(reset_at - time.time())))

    def _decide(self, item: limits.RateLimitItem, counter: str) -> Decision:
        # Both limits in one Lua script (ACQUIRE_PAIR_LUA): one round trip, atomic across
        # processes. The script is called directly, not through a limits method, so Redis
        # errors are wrapped here as limits wraps them (wrap_exceptions=True): hit() then
        # handles every storage failure the same way.
        glob = self.global_limit
        try:
            verdict, start, used = self._acquire_pair(
                [self._redis.prefixed_key(counter), self._global_redis_key],
                [time.time(), item.amount, item.get_expiry(), glob.amount, self._global_expiry],
            )
        except self._redis_errors as err:
            raise limits.errors.StorageError(err) from err
        if verdict == 0 and self._failed_until:
            self._failed_until = 0.0
        return self._decision(item, int(verdict), float(start), int(used))

    def _decision(self, item: limits.RateLimitItem, verdict: int, start: float, used: int) -> Decision:
        """The Decision for an acquire_pair verdict and the deciding window's (start, used).

        ``_decide_in_memory`` builds the same Decision inline.
        """
        if verdict == 0:
            expiry = item.get_expiry()
            return Decision(True, None, item.amount, max(0, item.amount - used), start + expiry, 0)
        refused, scope = (item, "key") if verdict == 1 else (self.global_limit, "global")
        reset_at = start + refused.get_expiry()
        return Decision(False, scope, refused.amount, 0, reset_at, max(1, math.ceil(reset_at - time.time())))

    def _storage_failed(self, item: limits.RateLimitItem, err: Exception | None) -> Decision:
        with self._lock:
            self.storage_failures += 1
            if err is not None:
                self._failed_until = time.monotonic() + RETRY_AFTER_FAILURE
                log.warning(
                    "rate-limit storage %s unreachable (%s); failing %s",
                    self.storage_name,
                    type(getattr(err, "storage_error", err)).__name__,
                    self.failure_mode,
                )
        if self.failure_mode == "closed":
            raise Unavailable(
                f"rate-limit storage {self.storage_name} is unreachable and JAMEY_RATE_LIMIT_FAILURE=closed"
            )
        now = time.time()
        return Decision(True, None, item.amount, item.amount, now + item.get_expiry(), 0, degraded=True)

    def reset(self, key_id: str, limit: str) -> None:
        """Forget ``key_id``'s counted requests under ``limit`` (tests and admin tools)."""
        item = self._limit(limit)
        self._strategy.clear(item, "key", key_id)
        self._forget_leases(self._counter_key(item, limit, key_id))

    def reset_global(self) -> None:
        """Forget every counted request of the global limit (tests and admin tools)."""
        self._strategy.clear(self.global_limit, "global")
        self._forget_leases(self._global_counter)

    def _forget_leases(self, counter: str) -> None:
        if self._memory is None:
            keys = self._lease_keys(counter)
            cast(Any, self._redis.get_connection()).delete(*keys)
            if self._book is not None:
                self._book.forget(keys[0])

    def close(self) -> None:
        """Release the storage's connections (the asyncio clients' with their event loops)."""
        self._closed = True
        try:
            self.release_leases(everything=True)
        except Exception:  # closing: what is not handed back expires with its window
            log.debug("rate-limit leases not released on close", exc_info=True)
        close = getattr(getattr(self._storage, "storage", None), "close", None)
        if callable(close) and self._memory is None:
            close()
        self._async.clear()

    async def aclose(self) -> None:
        """Close this event loop's asyncio Redis client (an app's shutdown, on its loop)."""
        batcher = self._async.pop(asyncio.get_running_loop(), None)
        if batcher is not None:
            await batcher.client.aclose()
