"""The garbage collector in a service worker: the start-up heap frozen, the threshold set.

Measured under a 32-connection store load (docs/benchmarks.md, "The GC pauses"): a worker holds
about 190,000 objects the cyclic collector tracks once it has started (functions, tuples and
dicts of the imported modules, the app, the routes' models), and every full (generation-2)
collection walked all of them: a few per ten seconds, each 100-460 ms on a loaded 2-core
machine, which is the stores' p99. None of those objects ever becomes garbage.
``gc.freeze()`` after start-up moves them to the permanent generation, which collections skip,
so a full collection walks only what requests create. ``JAMEY_GC_FREEZE=0`` turns it off (to
measure), ``JAMEY_GC_THRESHOLD`` sets the young generation's threshold.
"""

from __future__ import annotations

import gc
import logging
import time

from jamey_engine.config import Settings

log = logging.getLogger(__name__)


def settle(settings: Settings) -> bool:
    """Tune the collector for serving; returns True when it froze the heap (``unsettle`` undoes)."""
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


def unsettle() -> None:
    """Give the frozen objects back to the collector (an app stopping in a longer-lived process,
    such as a test run building many apps, so what it held can be collected)."""
    gc.unfreeze()
