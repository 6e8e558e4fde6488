"""Thread-pool futures awaited on the event loop: every outcome arrives, with few wake-ups."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

from jamey_engine.errors import Busy
from jamey_engine.service.wakeup import Completions


def test_a_batch_completed_at_once_wakes_the_loop_about_once_and_each_caller_gets_its_own() -> None:
    async def main() -> tuple[list[object], int]:
        bridge = Completions(asyncio.get_running_loop())
        futures: list[concurrent.futures.Future[object]] = [concurrent.futures.Future() for _ in range(32)]
        waiters = [bridge.wait(f) for f in futures]

        def commit() -> None:  # as a group-commit writer does: all 32 at once
            for number, future in enumerate(futures):
                if number == 5:
                    future.set_exception(Busy("the index writer stayed taken"))
                else:
                    future.set_result(number)

        # The writer completes the whole batch while the loop is busy (joined here, blocking it):
        # the property is one wake-up per batch, with no race against the loop's own timing.
        writer = threading.Thread(target=commit)
        writer.start()
        writer.join()
        outcomes = await asyncio.gather(*waiters, return_exceptions=True)
        return outcomes, bridge.wakeups

    outcomes, wakeups = asyncio.run(main())
    assert [o for n, o in enumerate(outcomes) if n != 5] == [n for n in range(32) if n != 5]
    assert isinstance(outcomes[5], Busy)
    assert wakeups == 1  # asyncio.wrap_future would wake the loop 32 times


def test_a_caller_that_gives_up_cancels_the_queued_work() -> None:
    async def main() -> concurrent.futures.Future[object]:
        bridge = Completions(asyncio.get_running_loop())
        future: concurrent.futures.Future[object] = concurrent.futures.Future()
        waiter = bridge.wait(future)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return future

    assert asyncio.run(main()).cancelled()
