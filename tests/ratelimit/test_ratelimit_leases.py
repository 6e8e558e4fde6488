"""Leases of Redis counters (keys/ratelimit_lease.py): real Redis, real separate processes.

What must hold: across processes no window admits more than its limit; a lease's unspent hits go
back (or expire with the window) so another process is not starved; the last hits of a window are
decided exactly; the failure modes still apply once a process's leases are spent.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REDIS_URL
from private_servers import PrivateRedis

from jamey_engine.errors import Unavailable
from jamey_engine.keys.ratelimit import RateLimiter, parse_limit
from jamey_engine.keys.ratelimit_lease import LEASE_SHARE, lease_seconds

pytestmark = pytest.mark.redis

# A process hits until it has been refused for this long (several lease lives of a minute
# window: by then every other process's unspent hits have been handed back).
QUIET_SECONDS = 4 * lease_seconds(60) + 1.0


def unique_key() -> str:
    return f"test-lease-{uuid.uuid4().hex}"


def unique_global_limit(amount: int) -> str:
    """A global limit no other test or run shares (a unique period, from the system's entropy)."""
    return f"{amount}/{secrets.randbelow(900_000) + 100_000} hours"


# A process of its own: hits ``key`` under ``limit`` until refused for QUIET_SECONDS (or, with a
# shared start time, from then), prints how many it was admitted and its storage failures.
HITTER = textwrap.dedent(
    """
    import sys, time
    from jamey_engine.keys.ratelimit import RateLimiter
    url, global_limit, key_id, limit, quiet, start_at = sys.argv[1:7]
    limiter = RateLimiter(url, global_limit)
    time.sleep(max(0.0, float(start_at) - time.time()))
    admitted, last = 0, time.monotonic()
    while time.monotonic() - last < float(quiet):
        decision = limiter.hit(key_id, limit)
        if decision.allowed:
            admitted, last = admitted + 1, time.monotonic()
        else:
            time.sleep(0.005)
    limiter.close()
    print(admitted, limiter.storage_failures)
    """
)


def hitter(global_limit: str, key_id: str, limit: str, start_at: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            HITTER,
            REDIS_URL,
            global_limit,
            key_id,
            limit,
            str(QUIET_SECONDS),
            str(start_at),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def admitted_by(proc: subprocess.Popen[str]) -> int:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    admitted, failures = map(int, out.split())
    assert failures == 0, err
    return admitted


@pytest.fixture
def limiter() -> Iterator[RateLimiter]:
    limiter = RateLimiter(REDIS_URL, "1000000/minute")
    try:
        yield limiter
    finally:
        limiter.close()


def counted(limiter: RateLimiter, counter: str) -> int:
    """The hits Redis counts against ``counter`` (spent and leased), from the lease total."""
    total = limiter._redis.get_connection().get(limiter._lease_keys(counter)[1])
    return int(total or 0)


def test_two_processes_sharing_one_key_admit_exactly_its_limit_in_a_window() -> None:
    key_id = unique_key()
    start_at = time.time() + 3.0  # both begin at once, so they race for the same window
    procs = [hitter(unique_global_limit(1_000_000), key_id, "300/minute", start_at) for _ in range(2)]
    admitted = [admitted_by(proc) for proc in procs]
    assert sum(admitted) == 300, admitted


def test_two_processes_sharing_the_global_limit_admit_exactly_it_between_them() -> None:
    # Each process on keys of its own (no key limit near), one global limit for both.
    global_limit = unique_global_limit(250)
    start_at = time.time() + 3.0
    procs = [hitter(global_limit, unique_key(), "100000/minute", start_at) for _ in range(2)]
    admitted = [admitted_by(proc) for proc in procs]
    assert sum(admitted) == 250, admitted
    cleanup = RateLimiter(REDIS_URL, global_limit)
    cleanup.reset_global()
    cleanup.close()


def test_a_lease_reserves_hits_in_redis_and_its_unspent_hits_go_back(limiter: RateLimiter) -> None:
    key_id, item = unique_key(), parse_limit("800/minute")
    counter = item.key_for("key", key_id)
    first = limiter.hit(key_id, "800/minute")
    assert first.allowed and first.remaining == 799
    # One hit spent, a lease of 800 // LEASE_SHARE (at most the lease setting) reserved: what
    # Redis counts.
    assert counted(limiter, counter) == min(limiter.lease, 800 // LEASE_SHARE)
    # A second process sharing the key is not starved: once this lease ends, its unspent
    # hits go back (the releaser thread), and the other process gets every hit but ours.
    other = hitter(unique_global_limit(1_000_000), key_id, "800/minute")
    assert admitted_by(other) == 799
    assert counted(limiter, counter) == 800
    assert len(limiter._book or ()) == 0  # nothing left to hand back


def test_the_hits_of_a_killed_process_expire_with_the_window() -> None:
    # A process that dies holding a lease cannot hand it back: its hits stay counted until the
    # lease's end plus the window, then the key has its whole limit again.
    key_id, limit = unique_key(), "80/3 seconds"
    script = textwrap.dedent(
        f"""
        import sys
        from jamey_engine.keys.ratelimit import RateLimiter
        limiter = RateLimiter({REDIS_URL!r}, "1000000/minute")
        assert limiter.hit({key_id!r}, {limit!r}).allowed
        print("leased", flush=True)
        sys.stdin.read()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "leased"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    limiter = RateLimiter(REDIS_URL, "1000000/minute")
    try:
        leased = min(limiter.lease, 80 // LEASE_SHARE)
        in_window = [limiter.hit(key_id, limit) for _ in range(80)]
        assert sum(d.allowed for d in in_window) == 80 - leased  # the dead lease is still counted
        refused = in_window[-1]
        assert refused.scope == "key" and 1 <= refused.retry_after <= 4
        deadline = time.monotonic() + 30
        while not limiter.hit(key_id, limit).allowed:  # the window moves past the dead lease
            assert time.monotonic() < deadline, "the dead process's hits never expired"
            time.sleep(0.05)
    finally:
        limiter.close()


def test_the_last_hits_of_a_window_are_exact_and_the_headers_count_down(limiter: RateLimiter) -> None:
    key_id = unique_key()
    decisions = [limiter.hit(key_id, "50/minute") for _ in range(60)]
    assert [d.allowed for d in decisions] == [True] * 50 + [False] * 10
    assert [d.remaining for d in decisions[:50]] == list(range(49, -1, -1))
    assert all(d.scope == "key" and d.remaining == 0 for d in decisions[50:])
    # Reset and Retry-After: about a minute off (a lease's end at most a lease's life later).
    now = time.time()
    assert all(now + 50 < d.reset_at <= now + 60 + lease_seconds(60) + 1 for d in decisions)
    assert all(1 <= d.retry_after <= 62 for d in decisions[50:])
    assert all(d.headers()["Retry-After"] == str(d.retry_after) for d in decisions[50:])


def test_a_request_refused_by_the_global_limit_keeps_its_key_lease_unspent() -> None:
    limiter = RateLimiter(REDIS_URL, unique_global_limit(3))
    key_id = unique_key()
    try:
        decisions = [limiter.hit(key_id, "10/minute") for _ in range(5)]
        assert [d.scope for d in decisions] == [None, None, None, "global", "global"]
        limiter.reset_global()
        # The key's 10 less the 3 admitted: the global refusals were charged to neither.
        rest = [limiter.hit(key_id, "10/minute") for _ in range(8)]
        assert [d.allowed for d in rest] == [True] * 3 + [False] * 5  # the global 3 again
        assert rest[-1].scope == "global"
    finally:
        limiter.reset_global()
        limiter.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    with PrivateRedis(tmp_path / "redis") as redis:
        yield redis


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_with_redis_down_a_live_lease_is_spent_then_the_failure_mode_applies(
    private_redis: PrivateRedis, mode: str
) -> None:
    limiter = RateLimiter(private_redis.url, "1000000/minute", mode)
    key_id = unique_key()
    try:
        assert limiter.hit(key_id, "1000/minute").allowed  # leases 1000 // LEASE_SHARE
        private_redis.stop()
        # The hits already reserved in Redis are this process's to spend, Redis or not.
        spent = [
            limiter.hit(key_id, "1000/minute") for _ in range(min(limiter.lease, 1000 // LEASE_SHARE) - 1)
        ]
        assert all(d.allowed and not d.degraded for d in spent)
        assert limiter.storage_failures == 0
        if mode == "closed":
            with pytest.raises(Unavailable):
                limiter.hit(key_id, "1000/minute")
        else:
            decision = limiter.hit(key_id, "1000/minute")
            assert decision.allowed and decision.degraded
        assert limiter.storage_failures == 1
    finally:
        limiter.close()


def test_a_negative_lease_is_refused_with_its_name() -> None:
    from jamey_engine.errors import InvalidInput

    with pytest.raises(InvalidInput, match="lease -1"):
        RateLimiter(REDIS_URL, "10/second", lease=-1)


def test_a_forked_child_does_not_spend_its_parents_leases(limiter: RateLimiter) -> None:
    key_id = unique_key()
    assert limiter.hit(key_id, "800/minute").allowed  # the parent holds a lease
    assert len(limiter._book or ()) == 2  # the key's and the global's
    pid = os.fork()
    if pid == 0:  # the child: no lease of the parent's, then one of its own from Redis
        inherited = len(limiter._book or ())
        admitted = limiter.hit(key_id, "800/minute").allowed
        os._exit(0 if inherited == 0 and admitted and len(limiter._book or ()) == 2 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
