"""SteadyMemoryStorage: the stock moving window's decisions, with O(1) hits and no timer threads."""

from __future__ import annotations

import threading
import time

import time_machine
from helpers import threads_started_by_this_thread

from jamey_engine.keys.ratelimit import SteadyMemoryStorage


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
