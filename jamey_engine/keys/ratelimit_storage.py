"""Where the rate limiter's counters live: the in-memory moving window and the Redis scripts.

``SteadyMemoryStorage`` (memory://) keeps each key's hit times in a deque; ``ACQUIRE_PAIR_LUA``
is the same decision as one Redis script, and ``PipelinedDecisions`` sends those scripts from an
event loop as pipelines. The limiter that uses them (``RateLimiter``) is in ``keys.ratelimit``.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import weakref
from collections import deque
from typing import Any

from limits.storage import MemoryStorage

# What SteadyMemoryStorage.acquire_pair does, in Redis, atomically: one EVALSHA per decision.
# The counters are limits' own moving-window lists (acquire_moving_window.lua with amount 1:
# hit times, newest first, trimmed to the limit, expiring after the window), so limits'
# get_moving_window and clear (RateLimiter.reset) work on them unchanged.
# KEYS: the key's counter, the global counter (both prefixed as limits prefixes them).
# ARGV: now (the client's time.time(), as limits passes it), key limit, key expiry (s),
#       global limit, global expiry (s).
# Reply: {verdict, start, used}: verdict 0 admitted (both charged), 1 refused by the key's
# limit (nothing charged), 2 refused by the global limit (the key's hit stays counted);
# start and used are the deciding window's oldest hit time (a string, as stored) and hit
# count: the key's window when admitted, the refusing limit's otherwise.
ACQUIRE_PAIR_LUA = """
local now = tonumber(ARGV[1])
local limit, expiry = tonumber(ARGV[2]), tonumber(ARGV[3])
local global_limit, global_expiry = tonumber(ARGV[4]), tonumber(ARGV[5])

-- The limit-th newest hit when it is still in the window (the counter is full), else nil.
local function full(key, limit, expiry)
    local entry = redis.call('lindex', key, limit - 1)
    if entry and tonumber(entry) >= now - expiry then
        return entry
    end
    return nil
end

local function record(key, limit, expiry)
    redis.call('lpush', key, now)
    redis.call('ltrim', key, 0, limit - 1)
    redis.call('expire', key, expiry)
end

-- Both checked before either counts: a request refused by one limit is charged to neither.
local refused = full(KEYS[1], limit, expiry)
if refused then
    return {1, refused, limit}
end
refused = full(KEYS[2], global_limit, global_expiry)
if refused then
    return {2, refused, global_limit}
end
record(KEYS[1], limit, expiry)
record(KEYS[2], global_limit, global_expiry)

-- The key's window after the hit: its oldest hit at or after now - expiry, found by the
-- binary search of limits' moving_window.lua (hits are newest first).
local low, high, oldest = 0, limit - 1, nil
local floor = now - expiry
while low <= high do
    local mid = math.floor((low + high) / 2)
    local value = tonumber(redis.call('lindex', KEYS[1], mid))
    if value and value >= floor then
        oldest = mid
        low = mid + 1
    else
        high = mid - 1
    end
end
return {0, redis.call('lindex', KEYS[1], oldest), oldest + 1}
"""


SWEEP_EVERY = 5.0
#: Limits of at most this many hits per window keep one entry per hit (exact); larger ones count
#: in ``SlidingBuckets`` (at most ``BUCKETS + 1`` entries a key, whatever the limit).
EXACT_UP_TO = 20_000
BUCKETS = 100


class SlidingBuckets:
    """A moving window of ``BUCKETS`` fixed sub-buckets: bounded memory for large limits.

    Hits are counted per sub-bucket of ``expiry / BUCKETS`` seconds, and a sub-bucket leaves the
    window only once its **end** is ``expiry`` seconds old. So every admitted hit is counted for
    at least ``expiry`` seconds: no span of ``expiry`` seconds ever holds more than the limit,
    as with the exact log. The price: a hit is counted up to ``expiry / BUCKETS`` seconds (1% of
    the window) longer than the exact log counts it, so a request arriving in that margin may be
    refused where the exact log would admit it; ``Reset`` is when the oldest sub-bucket leaves.
    """

    __slots__ = ("counts", "expiry", "total", "width")

    def __init__(self, expiry: float) -> None:
        self.expiry = expiry
        self.width = expiry / BUCKETS
        self.counts: deque[list[int]] = deque()  # [sub-bucket number, hits], oldest first
        self.total = 0

    def trim(self, now: float) -> None:
        """Drop the sub-buckets whose end is a whole window ago."""
        counts = self.counts
        if counts and counts[0][0] + 1 <= (now - self.expiry) / self.width:
            floor = (now - self.expiry) / self.width
            while counts and counts[0][0] + 1 <= floor:
                self.total -= counts.popleft()[1]

    def oldest(self, now: float) -> float:
        """The time that, plus ``expiry``, is when the oldest sub-bucket leaves (``now`` if none)."""
        return (self.counts[0][0] + 1) * self.width if self.counts else now

    def add(self, now: float, amount: int = 1) -> None:
        number = int(now // self.width)
        if self.counts and self.counts[-1][0] == number:
            self.counts[-1][1] += amount
        else:
            self.counts.append([number, amount])
        self.total += amount


class SteadyMemoryStorage(MemoryStorage):
    """limits' MemoryStorage with a leaner moving window, and no timer threads on the request path.

    The stock class keeps each key's entries in a newest-first list (an insert at the front per
    hit, a bisect with a Python key function per check) and starts a new 10 ms
    ``threading.Timer`` whenever the last one has ended, so about every 10 ms under traffic;
    ``Thread.start`` blocks the caller until the new thread runs (milliseconds on a busy
    machine, on the service's event loop). Here each key has a deque of hit times, oldest first:
    a hit trims the expired head and appends, both O(1), and one daemon thread drops idle keys
    every ``SWEEP_EVERY`` seconds. The decisions are the stock moving window's: admit when fewer
    than ``limit`` hits fall within the last ``expiry`` seconds. (Added by the service helper.)

    A limit above ``EXACT_UP_TO`` hits per window counts in ``SlidingBuckets`` instead: memory
    bounded by the number of sub-buckets, never more than the limit in a window, and a hit
    remembered up to 1% of the window longer than the exact log would.
    """

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.windows: dict[str, tuple[float, deque[float]]] = {}  # key -> (expiry, hit times)
        self.buckets: dict[str, SlidingBuckets] = {}  # the keys of limits above EXACT_UP_TO
        self._windows_lock = threading.Lock()
        # A live thread in ``timer`` also stops the stock class from starting timers of its own.
        self.timer = threading.Thread(  # type: ignore[assignment]
            target=_sweep_forever, args=(weakref.ref(self),), name="jamey-ratelimit-sweep", daemon=True
        )
        self.timer.start()

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Record ``amount`` hits of ``key`` if that keeps it within ``limit`` per ``expiry`` s."""
        if amount > limit:
            return False
        now = time.time()
        if limit > EXACT_UP_TO:
            with self._windows_lock:
                used = self._trimmed(key, limit, expiry, now)[1]
                if used + amount > limit:
                    return False
                self._add(key, limit, now, amount)
                return True
        with self._windows_lock:
            hits = self._live_hits(key, expiry, now)
            if len(hits) + amount > limit:
                return False
            hits.extend([now] * amount)
            return True

    def acquire_pair(
        self, key: str, limit: int, expiry: int, other: str, other_limit: int, other_expiry: int
    ) -> tuple[int, float, int]:
        """One hit of ``key`` and then of ``other`` (the global counter), under one lock.

        Returns (0 when both admitted it, 1 when ``key``'s limit refused it, 2 when ``other``'s
        did) and the window of the counter that decided:
        (oldest hit time, hits), as ``get_moving_window`` gives it. What two ``acquire_entry``
        calls and a ``get_moving_window`` do, for the service's per-request decision.
        """
        now = time.time()
        if limit > EXACT_UP_TO or other_limit > EXACT_UP_TO:
            return self._acquire_pair_any(key, limit, expiry, other, other_limit, other_expiry, now)
        with self._windows_lock:
            windows = self.windows
            first = windows.get(key)
            if first is None:
                first = windows[key] = (float(expiry), deque())
            second = windows.get(other)
            if second is None:
                second = windows[other] = (float(other_expiry), deque())
            hits, other_hits = first[1], second[1]
            floor = now - expiry
            while hits and hits[0] <= floor:
                hits.popleft()
            if len(hits) >= limit:
                return 1, hits[0], len(hits)
            floor = now - other_expiry
            while other_hits and other_hits[0] <= floor:
                other_hits.popleft()
            if len(other_hits) >= other_limit:  # not charged to the key either, as in Redis
                return 2, other_hits[0], len(other_hits)
            hits.append(now)
            other_hits.append(now)
            return 0, hits[0], len(hits)

    def _trimmed(self, key: str, limit: int, expiry: int, now: float) -> tuple[float, int]:
        """(oldest, hits) of ``key``'s window, exact or in sub-buckets; under the lock."""
        if limit > EXACT_UP_TO:
            buckets = self.buckets.get(key)
            if buckets is None:
                buckets = self.buckets[key] = SlidingBuckets(float(expiry))
            buckets.trim(now)
            return buckets.oldest(now), buckets.total
        hits = self._live_hits(key, expiry, now)
        return (hits[0] if hits else now), len(hits)

    def _live_hits(self, key: str, expiry: int, now: float) -> deque[float]:
        """``key``'s moving window (made when missing), its hits older than ``expiry`` dropped."""
        window = self.windows.get(key)
        if window is None:
            window = self.windows[key] = (float(expiry), deque())
        hits = window[1]
        floor = now - expiry
        while hits and hits[0] <= floor:
            hits.popleft()
        return hits

    def _add(self, key: str, limit: int, now: float, amount: int = 1) -> None:
        if limit > EXACT_UP_TO:
            self.buckets[key].add(now, amount)
        else:
            self.windows[key][1].extend([now] * amount)

    def _acquire_pair_any(
        self, key: str, limit: int, expiry: int, other: str, other_limit: int, other_expiry: int, now: float
    ) -> tuple[int, float, int]:
        """``acquire_pair`` when either limit counts in sub-buckets (the same rules)."""
        with self._windows_lock:
            start, used = self._trimmed(key, limit, expiry, now)
            if used >= limit:
                return 1, start, used
            other_start, other_used = self._trimmed(other, other_limit, other_expiry, now)
            if other_used >= other_limit:
                return 2, other_start, other_used
            self._add(key, limit, now)
            self._add(other, other_limit, now)
            if not used:  # the window starts with this hit (or its sub-bucket)
                start = self.buckets[key].oldest(now) if limit > EXACT_UP_TO else now
            return 0, start, used + 1

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest hit still in the window, hits in the window); (now, 0) when none.

        For a limit counted in sub-buckets, the "oldest hit" is the end of the oldest sub-bucket.
        """
        now = time.time()
        if limit > EXACT_UP_TO:
            with self._windows_lock:
                return self._trimmed(key, limit, expiry, now)
        with self._windows_lock:
            window = self.windows.get(key)
            if window is None:
                return now, 0
            hits = window[1]
            floor = now - expiry
            while hits and hits[0] <= floor:
                hits.popleft()
            return (hits[0], len(hits)) if hits else (now, 0)

    def clear(self, key: str) -> None:
        """Forget every hit of ``key``."""
        with self._windows_lock:
            self.windows.pop(key, None)
            self.buckets.pop(key, None)
        super().clear(key)

    def sweep(self) -> None:
        """Drop keys with no hit inside their window (idle keys), so memory stays bounded."""
        now = time.time()
        with self._windows_lock:
            for key, (expiry, hits) in list(self.windows.items()):
                if not hits or hits[-1] <= now - expiry:
                    del self.windows[key]
            for key, buckets in list(self.buckets.items()):
                buckets.trim(now)
                if not buckets.total:
                    del self.buckets[key]


def _sweep_forever(ref: weakref.ReferenceType[SteadyMemoryStorage]) -> None:
    while True:
        time.sleep(SWEEP_EVERY)
        storage = ref()
        if storage is None:
            return
        storage.sweep()
        del storage


class PipelinedDecisions:
    """The decisions of one event loop, sent to Redis as pipelines over one connection.

    A decision joins the batch being gathered; one task sends the batch as a pipeline of
    EVALSHAs (``ACQUIRE_PAIR_LUA`` by default, or the lease script: one per decision) and hands each reply back, while the next
    batch gathers. Redis runs each script whole, one at a time, so every decision is as atomic
    as one sent alone: only the socket round trips are shared (at 32 connections a request
    paid ~200 µs of CPU for its own write, read and connection-pool bookkeeping). A server that
    lost the script (a restart) is sent it once and the batch again.
    """

    SHA = hashlib.sha1(ACQUIRE_PAIR_LUA.encode()).hexdigest()  # noqa: S324 (Redis names scripts so)

    def __init__(self, client: Any, script: str = ACQUIRE_PAIR_LUA) -> None:
        self.client = client
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 (Redis names scripts so)
        self._pending: list[tuple[tuple[str, ...], tuple[float | str, ...], asyncio.Future[Any]]] = []
        self._sending = False
        self.batches = 0
        # With leases: the lease request in flight per counter (ratelimit.py's ahit), resolved
        # when it is answered, so other requests of this loop wait for its grant.
        self.asking: dict[str, asyncio.Future[None]] = {}

    async def decide(self, keys: tuple[str, ...], args: tuple[float | str, ...]) -> Any:
        """The script's reply for one decision (raises the batch's or this reply's error)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((keys, args, future))
        if not self._sending:
            self._sending = True
            asyncio.get_running_loop().create_task(self._send())
        return await future

    async def _send(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    replies = await self._execute(batch)
                except Exception as err:  # the connection: every decision of the batch fails
                    replies = [err] * len(batch)
                for (_, _, future), reply in zip(batch, replies, strict=True):
                    if future.done():  # the request went away (cancelled)
                        continue
                    if isinstance(reply, Exception):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
        finally:
            self._sending = False

    async def _execute(self, batch: list[Any]) -> list[Any]:
        from redis.exceptions import NoScriptError

        self.batches += 1
        replies: list[Any] = [None] * len(batch)
        todo = list(range(len(batch)))
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            for index in todo:
                keys, args, _ = batch[index]
                pipe.evalsha(self.sha, len(keys), *keys, *args)
            for index, reply in zip(todo, await pipe.execute(raise_on_error=False), strict=True):
                replies[index] = reply
            # NOSCRIPT: that decision did not run; it is sent again once the script is loaded.
            todo = [index for index in todo if isinstance(replies[index], NoScriptError)]
            if not todo or attempt == 2:
                break
            await self.client.script_load(self.script)
        return replies
