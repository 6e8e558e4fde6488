"""The garbage collector in a service worker: the start-up heap frozen, the threshold set.

Measured under a 32-connection store load (docs/benchmarks.md, "The GC pauses"): a worker holds
about 190,000 objects the cyclic collector tracks once it has started (functions, tuples and
dicts of the imported modules, the app, the routes' models), and every full (generation-2)
collection walked all of them: a few per ten seconds, each 100-460 ms on a loaded 2-core
machine, which is the stores' p99. None of those objects ever becomes garbage.
``gc.freeze()`` after start-up moves them to the permanent generation, which collections skip,
so a full collection walks only what requests create. ``JAMEY_GC_FREEZE=0`` turns it off (to
measure), ``JAMEY_GC_THRESHOLD`` sets the young generation's threshold.

The GIL's switch interval is set here too (``JAMEY_SWITCH_INTERVAL_MS``, default 5 ms, Python's
own): the event loop that answers requests shares the GIL with the log's group-commit thread,
and a thread that wants the GIL waits up to the interval for the holder to let go. While every
store's completion ran on the log's thread, 1 ms took the stores' p99 over HTTP from 25-29 ms
to 15-16 ms (bench/bench_tail.py). Since a log group wakes the event loop once (an asyncio
future per store, resolved on the loop), 1 ms leaves the p99 where 5 ms has it and costs 4-9%
more CPU per store (three interleaved runs, docs/benchmarks.md), so the default is Python's.
"""

from __future__ import annotations

import gc
import logging
import sys
import time

from jamey_engine.config import Settings

log = logging.getLogger(__name__)


_PYTHON_SWITCH_INTERVAL = sys.getswitchinterval()


def settle(settings: Settings) -> bool:
    """Tune the collector and the GIL's switch interval for serving; returns True when it froze
    the heap (``unsettle`` undoes both)."""
    sys.setswitchinterval(settings.switch_interval_ms / 1000)
    if settings.gc_threshold is not None:
        _, second, third = gc.get_threshold()
        gc.set_threshold(settings.gc_threshold, second, third)
    if not settings.gc_freeze:
        return False
    started = time.perf_counter()
    gc.collect()  # garbage of the start-up is collected now, not frozen with the rest
    gc.freeze()
    log.debug(
        "froze %d start-up objects out of the collector's reach in %.0f ms",
        gc.get_freeze_count(),
        (time.perf_counter() - started) * 1000,
    )
    return True


def unsettle(*, thaw: bool = True) -> None:
    """Give the frozen objects back to the collector and the switch interval back to Python's (an
    app stopping in a longer-lived process, such as a test run building many apps)."""
    sys.setswitchinterval(_PYTHON_SWITCH_INTERVAL)
    if thaw:
        gc.unfreeze()
