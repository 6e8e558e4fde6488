"""``RateLimiter.ahit``: the event loop's decision, on the real Redis over an asyncio client.

The same guarantees as ``hit`` (tests/ratelimit/test_ratelimit.py): exactly N of many racing
requests, across processes too, one set of counters whichever path charged them, the failure
modes and the client's timeout.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import REDIS_URL
from limits.storage import RedisStorage
from private_servers import PrivateRedis

from jamey_engine.errors import Unavailable
from jamey_engine.keys.ratelimit import REDIS_TIMEOUT_SECONDS, Decision, RateLimiter, parse_limit

from .test_ratelimit import private_redis, unique_global_limit, unique_key

__all__ = ["private_redis"]  # the fixture, shared with test_ratelimit


async def race(limiter: RateLimiter, key_id: str, limit: str, requests: int) -> list[Decision]:
    try:
        return list(await asyncio.gather(*(limiter.ahit(key_id, limit) for _ in range(requests))))
    finally:
        await limiter.aclose()
        limiter.close()


@pytest.mark.parametrize("storage", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_100_racing_coroutines_on_a_5_per_minute_key_admit_exactly_5(storage: str) -> None:
    # Named, not the URL: each xdist worker has a Redis db of its own, so the ids must not vary.
    limiter = RateLimiter("memory://" if storage == "memory" else REDIS_URL, "100000/minute")
    decisions = asyncio.run(race(limiter, unique_key(), "5/minute", 100))
    assert sum(d.allowed for d in decisions) == 5
    assert all(d.scope == "key" and d.remaining == 0 for d in decisions if not d.allowed)
    assert limiter.storage_failures == 0


@pytest.mark.redis
def test_ahit_and_hit_charge_the_same_counters() -> None:
    limiter = RateLimiter(REDIS_URL, "100000/minute")
    key_id = unique_key()
    try:
        assert all(limiter.hit(key_id, "5/minute").allowed for _ in range(3))

        async def rest() -> list[Decision]:
            try:
                return [await limiter.ahit(key_id, "5/minute") for _ in range(3)]
            finally:
                await limiter.aclose()

        fourth, fifth, sixth = asyncio.run(rest())
        assert fourth.allowed and fourth.remaining == 1 and fifth.allowed and fifth.remaining == 0
        assert not sixth.allowed and sixth.scope == "key"
        assert not limiter.hit(key_id, "5/minute").allowed  # the blocking path sees the 5 too
    finally:
        limiter.close()


@pytest.mark.redis
def test_two_processes_deciding_on_their_loops_admit_exactly_the_global_limit() -> None:
    shared = unique_key()
    global_limit = unique_global_limit(9)
    start_at = time.time() + 3.0
    script = textwrap.dedent(
        f"""
        import asyncio, time, uuid
        from jamey_engine.keys.ratelimit import RateLimiter
        async def main():
            limiter = RateLimiter({REDIS_URL!r}, {global_limit!r})
            await asyncio.sleep(max(0.0, {start_at!r} - time.time()))
            calls = [limiter.ahit({shared!r}, "5/minute") for _ in range(20)]
            calls += [limiter.ahit(uuid.uuid4().hex, "1000/minute") for _ in range(20)]
            decisions = await asyncio.gather(*calls)
            await limiter.aclose()
            print(sum(d.allowed for d in decisions), limiter.storage_failures)
        asyncio.run(main())
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    admitted = 0
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            allowed, failures = map(int, out.split())
            assert failures == 0
            admitted += allowed
    finally:
        limiter = RateLimiter(REDIS_URL, global_limit)
        limiter.reset_global()
        limiter.close()
    assert admitted == 9


def test_unreachable_redis_on_the_loop_takes_the_failure_mode() -> None:
    async def decide(mode: str) -> tuple[Decision | None, RateLimiter]:
        limiter = RateLimiter("redis://127.0.0.1:1/0", "100000/minute", mode)
        try:
            return await limiter.ahit(unique_key(), "5/minute"), limiter
        except Unavailable:
            return None, limiter
        finally:
            await limiter.aclose()

    opened, limiter = asyncio.run(decide("open"))
    assert opened is not None and opened.allowed and opened.degraded and limiter.storage_failures == 1
    closed, limiter = asyncio.run(decide("closed"))
    assert closed is None and limiter.storage_failures == 1


@pytest.mark.redis
def test_a_redis_error_reply_on_the_loop_takes_the_failure_mode() -> None:
    key_id = unique_key()
    limiter = RateLimiter(REDIS_URL, "100000/minute", "closed")
    storage = limiter._storage
    assert isinstance(storage, RedisStorage)
    counter = storage.prefixed_key(parse_limit("5/minute").key_for("key", key_id))
    # Both the list of the path without leases and the lease set of the leased one.
    leases = storage.prefixed_key("lease:" + parse_limit("5/minute").key_for("key", key_id))
    storage.get_connection().set(counter, "not a list")
    storage.get_connection().set(leases, "not a sorted set")  # WRONGTYPE for the script

    async def decide() -> None:
        try:
            await limiter.ahit(key_id, "5/minute")
        finally:
            await limiter.aclose()

    try:
        with pytest.raises(Unavailable):
            asyncio.run(decide())
        assert limiter.storage_failures == 1
    finally:
        storage.get_connection().delete(counter, leases)
        limiter.close()


def test_a_redis_that_never_answers_times_out_on_the_loop() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        limiter = RateLimiter(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", "100/minute", "open")

        async def decide() -> Decision:
            try:
                options = limiter._batcher().client.connection_pool.connection_kwargs
                assert options["socket_timeout"] == options["socket_connect_timeout"] == REDIS_TIMEOUT_SECONDS
                return await limiter.ahit(unique_key(), "5/minute")
            finally:
                await limiter.aclose()

        decision = asyncio.run(decide())
        assert decision.allowed and decision.degraded and limiter.storage_failures == 1
        limiter.close()


@pytest.mark.redis
def test_racing_decisions_share_pipelined_round_trips() -> None:
    limiter = RateLimiter(REDIS_URL, "100000/minute")

    async def burst() -> tuple[list[Decision], int]:
        try:
            decisions = await asyncio.gather(*(limiter.ahit(unique_key(), "5/minute") for _ in range(100)))
            return list(decisions), limiter._batcher().batches
        finally:
            await limiter.aclose()

    decisions, batches = asyncio.run(burst())
    limiter.close()
    assert all(d.allowed and d.remaining == 4 for d in decisions)
    assert 1 <= batches < 100  # the first decision goes alone, the rest join batches


@pytest.mark.redis
def test_a_redis_that_lost_the_script_is_sent_it_and_decides(private_redis: PrivateRedis) -> None:
    import redis

    limiter = RateLimiter(private_redis.url, "100000/minute", "closed")
    key_id = unique_key()

    async def decide(count: int) -> list[Decision]:
        try:
            return list(await asyncio.gather(*(limiter.ahit(key_id, "3/minute") for _ in range(count))))
        finally:
            await limiter.aclose()

    try:
        assert sum(d.allowed for d in asyncio.run(decide(2))) == 2
        redis.Redis.from_url(private_redis.url).script_flush()
        later = asyncio.run(decide(3))  # NOSCRIPT: loaded again, each decision made exactly once
        assert sum(d.allowed for d in later) == 1 and limiter.storage_failures == 0
    finally:
        limiter.close()


@pytest.mark.redis
def test_racing_requests_that_find_no_lease_wait_for_the_one_asking_for_it(
    private_redis: PrivateRedis,
) -> None:
    # 32 requests of one key arrive when the process holds no lease (a lease ran out under
    # load): one asks Redis for a lease of each counter and the others spend its grant, instead
    # of each leasing 100 hits the others hand back.
    import redis

    limiter = RateLimiter(private_redis.url, "1000000/minute")
    key_id = unique_key()

    async def burst() -> list[Decision]:
        try:
            return list(await asyncio.gather(*(limiter.ahit(key_id, "100000/minute") for _ in range(32))))
        finally:
            await limiter.aclose()

    decisions = asyncio.run(burst())
    client = redis.Redis.from_url(private_redis.url)
    try:
        lease_sets = [name for name in client.scan_iter("*lease:*") if client.type(name) == b"zset"]
        leases = {name: client.zrange(name, 0, -1) for name in lease_sets}
    finally:
        client.close()
        limiter.close()
    assert all(d.allowed for d in decisions)
    assert len(leases) == 2  # the key's counter and the global one
    assert all(len(members) == 1 for members in leases.values()), leases
    # The one lease of the key's counter served all 32 (its 100 hits less the 32 spent).
    assert min(d.remaining for d in decisions) == 100000 - 32


def test_requests_waiting_for_a_lease_take_the_failure_mode_the_asker_met() -> None:
    # Redis unreachable while 32 requests need a lease: the one asking meets the failure, and the
    # 31 waiting for it take the failure mode at once instead of each trying Redis again.
    limiter = RateLimiter("redis://127.0.0.1:1/0", "100000/minute", "open")
    key_id = unique_key()

    async def burst() -> tuple[list[Decision], int]:
        try:
            decisions = await asyncio.gather(*(limiter.ahit(key_id, "1000/minute") for _ in range(32)))
            return list(decisions), limiter._batcher().batches
        finally:
            await limiter.aclose()

    decisions, batches = asyncio.run(burst())
    limiter.close()
    assert all(d.allowed and d.degraded for d in decisions)
    assert limiter.storage_failures == 32
    assert batches == 1  # only the asker's request went out
