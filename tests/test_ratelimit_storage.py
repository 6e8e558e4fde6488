"""SteadyMemoryStorage: the stock moving window's decisions, with O(1) hits and no timer threads."""

from __future__ import annotations

import threading
import time

from helpers import threads_started_by_this_thread

from jamey_engine.keys.ratelimit import SteadyMemoryStorage


def test_it_admits_up_to_the_limit_within_the_window_then_slides() -> None:
    storage = SteadyMemoryStorage()
    assert [storage.acquire_entry("k", 3, 1) for _ in range(4)] == [True, True, True, False]
    start, count = storage.get_moving_window("k", 3, 1)
    assert count == 3 and time.time() - 1 < start <= time.time()
    time.sleep(1.05)
    assert storage.acquire_entry("k", 3, 1) is True
    assert storage.get_moving_window("k", 3, 1)[1] == 1


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
