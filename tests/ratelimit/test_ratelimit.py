"""Rate limits on real storage: in memory and in the real Redis, racing threads and processes."""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from helpers import REDIS_URL
from limits.storage import RedisStorage, storage_from_string
from private_servers import PrivateRedis

from jamey_engine.config import Settings
from jamey_engine.errors import InvalidInput, Unavailable
from jamey_engine.keys.ratelimit import (
    REDIS_TIMEOUT_SECONDS,
    RETRY_AFTER_FAILURE,
    Decision,
    RateLimiter,
    parse_limit,
)

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def storage_url(request: pytest.FixtureRequest) -> str:
    return "memory://" if request.param == "memory" else REDIS_URL


def unique_key() -> str:
    """A key id no other test (or earlier run) used, so shared Redis counters never collide."""
    return f"test-{uuid.uuid4().hex}"


def race(limiter: RateLimiter, key_id: str, limit: str, threads: int) -> list[Decision]:
    decisions: list[Decision] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def one() -> None:
        barrier.wait()
        decision = limiter.hit(key_id, limit)
        with lock:
            decisions.append(decision)

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return decisions


def test_100_racing_threads_on_a_5_per_minute_key_admit_exactly_5(storage_url: str) -> None:
    limiter = RateLimiter(storage_url, "100000/minute")
    try:
        decisions = race(limiter, unique_key(), "5/minute", threads=100)
    finally:
        limiter.close()
    assert len(decisions) == 100
    assert sum(d.allowed for d in decisions) == 5
    refused = [d for d in decisions if not d.allowed]
    assert all(d.scope == "key" and d.remaining == 0 and 1 <= d.retry_after <= 60 for d in refused)
    assert limiter.storage_failures == 0


def test_two_processes_sharing_redis_admit_exactly_the_limit_between_them(tmp_path: Path) -> None:
    key_id = unique_key()
    start_at = time.time() + 3.0  # both processes start hitting at the same moment
    script = textwrap.dedent(
        f"""
        import threading, time
        from jamey_engine.keys.ratelimit import RateLimiter
        limiter = RateLimiter({REDIS_URL!r}, "100000/minute")
        admitted = []
        def one():
            time.sleep(max(0.0, {start_at!r} - time.time()))
            admitted.append(limiter.hit({key_id!r}, "7/minute").allowed)
        threads = [threading.Thread(target=one) for _ in range(40)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print(sum(admitted), limiter.storage_failures)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        admitted, failures = map(int, out.split())
        assert failures == 0
        results.append(admitted)
    assert sum(results) == 7, results


def test_a_decision_carries_limit_remaining_and_reset(storage_url: str) -> None:
    limiter = RateLimiter(storage_url, "100000/minute")
    key_id = unique_key()
    try:
        before = time.time()
        first = limiter.hit(key_id, "3/minute")
        second = limiter.hit(key_id, "3/minute")
        third = limiter.hit(key_id, "3/minute")
        fourth = limiter.hit(key_id, "3/minute")
    finally:
        limiter.close()
    assert (first.allowed, first.scope, first.limit, first.remaining, first.retry_after) == (
        True,
        None,
        3,
        2,
        0,
    )
    assert (second.remaining, third.remaining) == (1, 0)
    assert before + 59 <= first.reset_at <= time.time() + 61
    assert not fourth.allowed and fourth.scope == "key" and fourth.remaining == 0
    headers = fourth.headers()
    assert headers["X-RateLimit-Limit"] == "3" and headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert "Retry-After" not in first.headers()


def test_keys_have_separate_counters(storage_url: str) -> None:
    limiter = RateLimiter(storage_url, "100000/minute")
    one, two = unique_key(), unique_key()
    try:
        assert limiter.hit(one, "1/minute").allowed
        assert not limiter.hit(one, "1/minute").allowed
        assert limiter.hit(two, "1/minute").allowed
    finally:
        limiter.close()


def test_the_global_limit_applies_after_the_key_limit(storage_url: str) -> None:
    limiter = RateLimiter(storage_url, "3/hour")
    limiter.reset_global()  # Redis outlives earlier runs
    try:
        keys = [unique_key() for _ in range(4)]
        decisions = [limiter.hit(key_id, "10/minute") for key_id in keys]
    finally:
        limiter.close()
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[3].scope == "global" and decisions[3].limit == 3


def test_memory_and_redis_agree_on_what_a_refusal_counts(storage_url: str) -> None:
    # Refused by its key: counted nowhere. Refused by the global limit: counted nowhere either.
    limiter = RateLimiter(storage_url, "2/hour")
    limiter.reset_global()  # Redis outlives earlier runs
    first, second = unique_key(), unique_key()
    try:
        assert limiter.hit(first, "1/hour").allowed
        assert limiter.hit(first, "1/hour").scope == "key"
        assert limiter.hit(second, "2/hour").allowed
        refused = limiter.hit(second, "2/hour")
        assert (refused.allowed, refused.scope) == (False, "global")
        limiter.reset_global()
        assert limiter.hit(second, "2/hour").allowed, "the globally refused hit used its key's second slot"
        assert limiter.hit(second, "2/hour").scope == "key"
    finally:
        limiter.close()


def test_reset_forgets_a_keys_counted_requests(storage_url: str) -> None:
    limiter = RateLimiter(storage_url, "100000/minute")
    key_id = unique_key()
    try:
        assert limiter.hit(key_id, "1/minute").allowed
        assert not limiter.hit(key_id, "1/minute").allowed
        limiter.reset(key_id, "1/minute")
        assert limiter.hit(key_id, "1/minute").allowed
    finally:
        limiter.close()


def test_a_refused_key_request_does_not_use_up_the_global_limit() -> None:
    limiter = RateLimiter("memory://", "2/hour")
    noisy, quiet = unique_key(), unique_key()
    assert limiter.hit(noisy, "1/hour").allowed
    for _ in range(5):
        assert limiter.hit(noisy, "1/hour").scope == "key"
    assert limiter.hit(quiet, "1/hour").allowed


def test_unreachable_redis_failing_open_admits_and_counts() -> None:
    limiter = RateLimiter(UNREACHABLE_REDIS, "100/minute", "open")
    first = limiter.hit(unique_key(), "5/minute")
    second = limiter.hit(unique_key(), "5/minute")
    assert first.allowed and first.scope is None and first.degraded
    assert second.allowed and second.degraded
    assert limiter.storage_failures == 2
    assert "127.0.0.1:1" in limiter.storage_name


def test_unreachable_redis_failing_closed_refuses_with_unavailable() -> None:
    limiter = RateLimiter(UNREACHABLE_REDIS, "100/minute", "closed")
    with pytest.raises(Unavailable, match=r"127\.0\.0\.1:1") as info:
        limiter.hit(unique_key(), "5/minute")
    assert info.value.status == 503
    with pytest.raises(Unavailable):
        limiter.hit(unique_key(), "5/minute")
    assert limiter.storage_failures == 2


def test_a_redis_password_never_appears_in_errors() -> None:
    limiter = RateLimiter("redis://:hunter2@127.0.0.1:1/0", "100/minute", "closed")
    with pytest.raises(Unavailable) as info:
        limiter.hit(unique_key(), "5/minute")
    assert "hunter2" not in str(info.value) and "hunter2" not in limiter.storage_name


@pytest.mark.redis
def test_from_settings_uses_the_configured_storage_and_failure_mode(data_dir: Path) -> None:
    settings = Settings.from_env(
        {
            "JAMEY_DATA_DIR": str(data_dir),
            "JAMEY_RATE_LIMIT_STORAGE": REDIS_URL,
            "JAMEY_GLOBAL_RATE_LIMIT": "50/second",
            "JAMEY_RATE_LIMIT_FAILURE": "closed",
        }
    )
    limiter = RateLimiter.from_settings(settings)
    try:
        assert limiter.failure_mode == "closed"
        assert limiter.global_limit.amount == 50
        assert limiter.hit(unique_key(), "1/second").allowed
    finally:
        limiter.close()


@pytest.mark.parametrize("text", ["fast", "", "0/minute", "5/minute;10/hour", "10 per fortnight"])
def test_a_bad_limit_string_is_invalid_input_naming_it(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_limit(text)
    assert repr(text) in str(info.value)
    limiter = RateLimiter("memory://", "100/minute")
    with pytest.raises(InvalidInput):
        limiter.hit(unique_key(), text)


def test_a_bad_storage_url_or_failure_mode_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="memory:// or a redis://"):
        RateLimiter("mongodb://x", "1/second")
    with pytest.raises(InvalidInput, match="Cluster is not supported"):
        RateLimiter("redis+cluster://127.0.0.1:1", "1/second")
    with pytest.raises(InvalidInput, match="open or closed"):
        RateLimiter("memory://", "1/second", "maybe")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own on a free port, running; ``stop``/``start`` it."""
    with PrivateRedis(tmp_path / "redis") as redis:
        yield redis


@pytest.mark.redis
def test_limits_resume_when_redis_comes_back(private_redis: PrivateRedis) -> None:
    limiter = RateLimiter(private_redis.url, "1000/minute", "open")
    key_id = unique_key()
    try:
        assert limiter.hit(key_id, "2/minute").allowed
        private_redis.stop()
        outage = limiter.hit(key_id, "2/minute")
        assert outage.allowed and outage.degraded
        assert limiter.storage_failures == 1
        private_redis.start()  # a fresh, empty Redis
        time.sleep(RETRY_AFTER_FAILURE + 0.1)
        decisions = [limiter.hit(key_id, "2/minute") for _ in range(3)]
        assert [d.allowed for d in decisions] == [True, True, False]
        assert not any(d.degraded for d in decisions)
        assert limiter.storage_failures == 1
    finally:
        limiter.close()


# One round trip per Redis decision (ACQUIRE_PAIR_LUA), with the decisions and counters of the
# three-call path it replaced: acquire_entry for the key, acquire_entry for the global counter,
# get_moving_window for the headers.


def unique_global_limit(amount: int) -> str:
    """A global limit whose Redis counter no other test or run shares (a unique period).

    From the system's entropy, not ``random``: pytest-randomly seeds ``random`` per test from
    the run's seed, and a run repeated with its seed would meet the first run's counters."""
    return f"{amount}/{secrets.randbelow(900_000) + 100_000} hours"


def three_call_decision(storage: RedisStorage, global_limit: str, key_id: str, limit: str) -> Decision:
    """What RateLimiter._decide computes, through limits' own storage calls: both windows
    checked, and only a request both admit counted (in each)."""
    item, glob = parse_limit(limit), parse_limit(global_limit)
    counter, global_counter = item.key_for("key", key_id), glob.key_for("global")
    both = ((item, "key", counter), (glob, "global", global_counter))
    for refused, scope, name in both:
        start, used = storage.get_moving_window(name, refused.amount, refused.get_expiry())
        if used >= refused.amount:
            reset_at = start + refused.get_expiry()
            return Decision(
                False, scope, refused.amount, 0, reset_at, max(1, math.ceil(reset_at - time.time()))
            )
    for admitted, _, name in both:
        storage.acquire_entry(name, admitted.amount, admitted.get_expiry())
    start, used = storage.get_moving_window(counter, item.amount, item.get_expiry())
    return Decision(True, None, item.amount, max(0, item.amount - used), start + item.get_expiry(), 0)


@contextlib.contextmanager
def redis_commands(limiter: RateLimiter) -> Iterator[list[str]]:
    """The names of the commands the limiter's Redis client sends meanwhile."""
    storage = limiter._storage
    assert isinstance(storage, RedisStorage)
    client = storage.get_connection()
    sent: list[str] = []
    real = client.execute_command

    def counting(*args: object, **options: object) -> object:
        sent.append(str(args[0]).upper())
        return real(*args, **options)

    client.execute_command = counting  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        del client.execute_command


@pytest.mark.redis
def test_without_leases_a_redis_decision_is_one_round_trip_whatever_the_verdict() -> None:
    limiter = RateLimiter(REDIS_URL, unique_global_limit(2), lease=0)
    busy, other = unique_key(), unique_key()
    try:
        limiter.hit(unique_key(), "10/minute")  # loads the script if this Redis lacks it; global 1/2
        limiter.reset_global()
        with redis_commands(limiter) as sent:
            verdicts = []
            for key_id in (busy, busy, busy, other):  # admitted, admitted, key, global
                before = len(sent)
                decision = limiter.hit(key_id, "2/minute")
                verdicts.append(decision.scope if not decision.allowed else "admitted")
                assert sent[before:] == ["EVALSHA"], (decision, sent[before:])
        assert verdicts == ["admitted", "admitted", "key", "global"]
    finally:
        limiter.reset_global()
        limiter.close()


@pytest.mark.redis
def test_without_leases_redis_decisions_match_the_three_call_path_and_limits_own_view() -> None:
    # The same requests on the same counter names, once through the script and once through the
    # calls it replaced on counters of their own (another key prefix): the verdicts, limits and
    # remaining counts match, and the reset times too (up to the moments each took the time).
    global_limit = unique_global_limit(5)
    limiter = RateLimiter(REDIS_URL, global_limit, lease=0)
    twin = cast(RedisStorage, storage_from_string(REDIS_URL, key_prefix=f"jamey-twin-{uuid.uuid4().hex}"))
    item = parse_limit("3/minute")
    names = [unique_key() for _ in range(3)]
    # key 0: 3 admitted, then refused by its key; key 1: 2 admitted (the global's 4th and 5th);
    # key 2: refused by the global limit four times (charged to neither); key 0 again: refused
    # by its key.
    requests = [names[0]] * 4 + [names[1]] * 2 + [names[2]] * 4 + [names[0]]
    expected = ["admitted"] * 3 + ["key"] + ["admitted"] * 2 + ["global"] * 4 + ["key"]
    verdicts = []
    try:
        for key_id in requests:
            ours = limiter.hit(key_id, "3/minute")
            theirs = three_call_decision(twin, global_limit, key_id, "3/minute")
            verdicts.append(ours.scope or "admitted")
            assert (ours.allowed, ours.scope, ours.limit, ours.remaining) == (
                theirs.allowed,
                theirs.scope,
                theirs.limit,
                theirs.remaining,
            ), key_id
            assert abs(ours.reset_at - theirs.reset_at) < 1.0, (ours, theirs)
            assert abs(ours.retry_after - theirs.retry_after) <= 1, (ours, theirs)
            # limits' get_moving_window reads the same counter and sees what the headers say.
            start, used = limiter._strategy.storage.get_moving_window(item.key_for("key", key_id), 3, 60)
            if ours.allowed:
                assert ours.remaining == 3 - used
                assert ours.reset_at == pytest.approx(start + 60, abs=1e-3)
            elif ours.scope == "key":
                assert used == 3 and ours.reset_at == pytest.approx(start + 60, abs=1e-3)
        assert verdicts == expected
    finally:
        limiter.reset_global()
        twin.clear(parse_limit(global_limit).key_for("global"))
        for key_id in names:
            limiter.reset(key_id, "3/minute")
            twin.clear(item.key_for("key", key_id))
        limiter.close()
        twin.storage.close()


@pytest.mark.redis
def test_two_processes_sharing_redis_admit_exactly_the_global_limit_between_them() -> None:
    # Each process: 20 threads on one shared key (5/minute) and 20 on keys of their own: 80
    # requests, of which the global limit (9) admits exactly 9 between the two processes.
    shared = unique_key()
    global_limit = unique_global_limit(9)
    start_at = time.time() + 3.0  # both processes start hitting at the same moment
    script = textwrap.dedent(
        f"""
        import threading, time, uuid
        from jamey_engine.keys.ratelimit import RateLimiter
        limiter = RateLimiter({REDIS_URL!r}, {global_limit!r})
        decisions = []
        def one(key_id, limit):
            time.sleep(max(0.0, {start_at!r} - time.time()))
            decisions.append(limiter.hit(key_id, limit))
        threads = [threading.Thread(target=one, args=({shared!r}, "5/minute")) for _ in range(20)]
        threads += [threading.Thread(target=one, args=(uuid.uuid4().hex, "1000/minute")) for _ in range(20)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        allowed = sum(d.allowed for d in decisions)
        by_key = sum(d.scope == "key" for d in decisions)
        by_global = sum(d.scope == "global" for d in decisions)
        print(allowed, by_key, by_global, limiter.storage_failures)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    totals = [0, 0, 0]
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            allowed, by_key, by_global, failures = map(int, out.split())
            assert failures == 0
            totals = [totals[0] + allowed, totals[1] + by_key, totals[2] + by_global]
    finally:
        limiter = RateLimiter(REDIS_URL, global_limit)
        limiter.reset_global()
        limiter.close()
    # Exactly the global limit is admitted across the two processes. Which limit refuses the
    # other 71 depends on arrival order: a request the global limit refuses charges neither
    # window, so once the global window is full the shared key may never reach its own 5.
    allowed, by_key, by_global = totals
    assert allowed == 9 and by_key + by_global == 71 and by_key <= 35, totals


@pytest.mark.redis
def test_a_redis_error_from_the_script_takes_the_failure_mode() -> None:
    # Not only connection errors: an error reply (here WRONGTYPE: the counter is not a list)
    # is a storage failure too, as it was when limits' own calls raised it.
    key_id = unique_key()
    closed = RateLimiter(REDIS_URL, "100000/minute", "closed")
    storage = closed._storage
    assert isinstance(storage, RedisStorage)
    counter = storage.prefixed_key(parse_limit("5/minute").key_for("key", key_id))
    # Both the list of the path without leases and the lease set of the leased one.
    leases = storage.prefixed_key("lease:" + parse_limit("5/minute").key_for("key", key_id))
    storage.get_connection().set(counter, "not a list")
    storage.get_connection().set(leases, "not a sorted set")
    try:
        with pytest.raises(Unavailable):
            closed.hit(key_id, "5/minute")
        assert closed.storage_failures == 1
        opened = RateLimiter(REDIS_URL, "100000/minute", "open")
        decision = opened.hit(key_id, "5/minute")
        assert decision.allowed and decision.degraded and opened.storage_failures == 1
        opened.close()
    finally:
        storage.get_connection().delete(counter, leases)
        closed.close()


def test_a_redis_that_never_answers_times_out_into_the_failure_mode(caplog: pytest.LogCaptureFixture) -> None:
    # A listening socket nobody reads: the connection opens and the EVALSHA's reply never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        limiter = RateLimiter(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", "100/minute", "open")
        # The bound is the client's read timeout (no stopwatch): without one, the hit would wait
        # for the reply forever (and the test's own timeout would end it).
        options = limiter._storage.get_connection().connection_pool.connection_kwargs
        assert options["socket_timeout"] == options["socket_connect_timeout"] == REDIS_TIMEOUT_SECONDS
        with caplog.at_level(logging.WARNING, logger="jamey_engine.keys.ratelimit"):
            decision = limiter.hit(unique_key(), "5/minute")
        assert decision.allowed and decision.degraded and limiter.storage_failures == 1
        assert "unreachable (TimeoutError); failing open" in caplog.text
        limiter.close()
