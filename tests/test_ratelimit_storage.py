"""SteadyMemoryStorage: the stock moving window's decisions, with O(1) hits and no timer threads."""

from __future__ import annotations

import threading
import time

import time_machine
from helpers import threads_started_by_this_thread

from jamey_engine.keys.ratelimit import RateLimiter, SteadyMemoryStorage
from jamey_engine.keys.ratelimit_storage import BUCKETS, EXACT_UP_TO


def test_it_admits_up_to_the_limit_within_the_window_then_slides() -> None:
    storage = SteadyMemoryStorage()
    with time_machine.travel(1_800_000_000, tick=False) as clock:
        hits = []
        for second in (0, 20, 40):  # three hits spread across a 60 s window
            clock.move_to(1_800_000_000 + second)
            hits.append(storage.acquire_entry("k", 3, 60))
        assert hits == [True, True, True]
        clock.move_to(1_800_000_050)
        assert storage.acquire_entry("k", 3, 60) is False
        assert storage.get_moving_window("k", 3, 60) == (1_800_000_000, 3)
        clock.move_to(1_800_000_061)  # only the oldest hit has left the window
        assert storage.acquire_entry("k", 3, 60) is True
        assert storage.acquire_entry("k", 3, 60) is False  # a fixed window would admit three here
        clock.move_to(1_800_000_081)  # now the hit at 20 s has left too
        assert storage.acquire_entry("k", 3, 60) is True
        assert storage.get_moving_window("k", 3, 60) == (1_800_000_040, 3)


def test_keys_are_counted_apart_and_clear_forgets_one() -> None:
    storage = SteadyMemoryStorage()
    assert storage.acquire_entry("a", 1, 60) and storage.acquire_entry("b", 1, 60)
    assert not storage.acquire_entry("a", 1, 60)
    storage.clear("a")
    assert storage.acquire_entry("a", 1, 60)
    assert storage.get_moving_window("nobody", 5, 60)[1] == 0


def test_a_batch_larger_than_the_room_left_is_refused_whole() -> None:
    storage = SteadyMemoryStorage()
    assert storage.acquire_entry("k", 5, 60, amount=3)
    assert not storage.acquire_entry("k", 5, 60, amount=3)
    assert storage.acquire_entry("k", 5, 60, amount=2)
    assert not storage.acquire_entry("k", 5, 60, amount=6)


def test_sweep_drops_idle_keys_only() -> None:
    storage = SteadyMemoryStorage()
    storage.acquire_entry("short", 5, 1)
    storage.acquire_entry("long", 5, 60)
    time.sleep(1.05)
    storage.sweep()
    assert set(storage.windows) == {"long"}


def test_counting_starts_no_threads() -> None:
    storage = SteadyMemoryStorage()
    with threads_started_by_this_thread() as started:
        for _ in range(20):  # spaced past the stock 10 ms expiry timer, which would restart each time
            storage.acquire_entry("spaced", 1000, 1)
            time.sleep(0.015)
    assert started == []


def test_racing_threads_admit_exactly_the_limit() -> None:
    storage = SteadyMemoryStorage()
    admitted = []
    barrier = threading.Barrier(50)

    def hit() -> None:
        barrier.wait()
        admitted.append(storage.acquire_entry("race", 7, 60))

    threads = [threading.Thread(target=hit) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admitted.count(True) == 7


# -- large limits: sub-buckets (SlidingBuckets), bounded memory -----------------------------


def admitted_times(storage: SteadyMemoryStorage, limit: int, expiry: int, seconds: float) -> list[float]:
    """Offer 3x the limit's rate for ``seconds`` (steps of 1/200 of the window); the times admitted."""
    admitted: list[float] = []
    step = expiry / 200
    per_step = 3 * limit // 200
    with time_machine.travel(1_800_000_000, tick=False) as clock:
        now = 1_800_000_000.0
        while now < 1_800_000_000 + seconds:
            clock.move_to(now)
            for _ in range(per_step):
                if storage.acquire_entry("big", limit, expiry):
                    admitted.append(now)
            now += step
    return admitted


def most_in_any_window(times: list[float], expiry: float) -> int:
    """The most of ``times`` (sorted) within any span of ``expiry`` seconds."""
    most, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - expiry:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_a_large_limit_keeps_bounded_memory_and_never_more_than_the_limit_in_a_window() -> None:
    limit, expiry = EXACT_UP_TO + 10_000, 60
    storage = SteadyMemoryStorage()
    admitted = admitted_times(storage, limit, expiry, seconds=200)
    assert "big" not in storage.windows  # no entry per hit
    assert len(storage.buckets["big"].counts) <= BUCKETS + 1
    assert most_in_any_window(admitted, expiry) == limit  # full, and never above
    # The first window admits the whole limit; each later one all but the sub-bucket margin.
    assert sum(t < 1_800_000_000 + expiry for t in admitted) == limit
    assert len(admitted) >= limit * 3 * (1 - 2 / BUCKETS)


def test_a_large_limit_forgets_a_hit_at_most_one_sub_bucket_after_the_exact_window() -> None:
    limit, expiry = EXACT_UP_TO + 1, 60
    storage = SteadyMemoryStorage()
    with time_machine.travel(1_800_000_000.25, tick=False) as clock:
        assert storage.acquire_entry("big", limit, expiry, amount=limit)
        assert not storage.acquire_entry("big", limit, expiry)
        oldest, used = storage.get_moving_window("big", limit, expiry)
        assert used == limit and 1_800_000_000.25 < oldest <= 1_800_000_000.25 + expiry / BUCKETS
        clock.move_to(1_800_000_000.25 + expiry)  # the exact log would admit again here
        assert not storage.acquire_entry("big", limit, expiry)
        clock.move_to(1_800_000_000.25 + expiry + expiry / BUCKETS)  # one sub-bucket later it does
        assert storage.acquire_entry("big", limit, expiry)


def test_the_limiter_in_memory_counts_a_100000_per_minute_key_in_sub_buckets() -> None:
    limiter = RateLimiter("memory://", "1000000/minute")
    storage = limiter._memory
    assert isinstance(storage, SteadyMemoryStorage)
    decisions = [limiter.hit("big-key", "100000/minute") for _ in range(5_000)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions[:3]] == [99_999, 99_998, 99_997]
    assert not storage.windows  # both limits above EXACT_UP_TO: no per-hit entries anywhere
    assert all(len(b.counts) <= BUCKETS + 1 for b in storage.buckets.values())
    assert sum(b.total for b in storage.buckets.values()) == 10_000  # the key's and the global
    limiter.close()
