"""The engine facade: one object that front doors (CLI, service, workbench, notebooks) hold.

It builds each component lazily from one Settings, so a command that only reads
index sizes never opens the database, and vice versa.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from jamey_engine.config import Settings
from jamey_engine.errors import InvalidInput, JameyError

if TYPE_CHECKING:
    from jamey_engine.db import Database
    from jamey_engine.events import EventPublisher
    from jamey_engine.keys import KeyManager
    from jamey_engine.keys.ratelimit import RateLimiter
    from jamey_engine.memory import MemoryStore
    from jamey_engine.memory.model import PruneResult
    from jamey_engine.progress import Progress
    from jamey_engine.vault import Vault


log = logging.getLogger("jamey_engine.engine")


@dataclass(frozen=True)
class PruneRun:
    """A real prune: each layer's result, how long it took, and a note when it went unrecorded."""

    results: list[PruneResult]
    duration: float
    note: str | None = None


class Engine:
    """Holds one Settings and the components built from it."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()

    @cached_property
    def memory(self) -> MemoryStore:
        from jamey_engine.memory import MemoryStore

        return MemoryStore.from_settings(self.settings)

    @cached_property
    def db(self) -> Database:
        from jamey_engine.db import Database

        return Database.from_settings(self.settings)

    @cached_property
    def keys(self) -> KeyManager:
        from jamey_engine.keys import KeyManager

        return KeyManager(self.db, self.settings, events=self.events)

    @cached_property
    def limiter(self) -> RateLimiter:
        from jamey_engine.keys.ratelimit import RateLimiter

        return RateLimiter.from_settings(self.settings)

    @cached_property
    def vault(self) -> Vault:
        from jamey_engine.vault import Vault

        return Vault(self.settings, memory=self.memory, db=self.db, events=self.events)

    @cached_property
    def events(self) -> EventPublisher:
        from jamey_engine.events import EventPublisher

        return EventPublisher.from_settings(self.settings)

    def prune(
        self,
        older_than: timedelta,
        layers: Sequence[str] | None = None,
        *,
        source: str,
        actor: str | None = None,
        progress: Progress | None = None,
    ) -> PruneRun:
        """Prune memories older than ``older_than`` for real, and record the run, whichever front
        door (``source``: cli, workbench, runbook) asked, on behalf of ``actor`` (default: the source).

        The record (one operation-log row per layer, read by /metrics, and a ``prune`` event)
        is best effort: a database that is down must not hide a finished prune, so the run's
        ``note`` says it went unrecorded. A prune that fails is recorded as a failure and its
        error re-raised; bad input (InvalidInput) is raised with nothing recorded.
        """
        started = time.monotonic()
        who = actor or source
        try:
            results = self.memory.prune(older_than, layers, dry_run=False, progress=progress)
        except JameyError as err:
            if not isinstance(err, InvalidInput):
                self._record_prune([], time.monotonic() - started, source, who, failure=err.message)
            raise
        duration = time.monotonic() - started
        return PruneRun(results, duration, self._record_prune(results, duration, source, who))

    def _record_prune(
        self, results: list[PruneResult], duration: float, source: str, actor: str, failure: str | None = None
    ) -> str | None:
        from jamey_engine.oplog import record_operation

        try:
            if failure is not None:
                record_operation(self.db, "prune", "failure", duration, detail=failure, actor=actor)
                self.events.publish("prune", {"status": "failure", "detail": failure, "source": source})
                return None
            for result in results:
                record_operation(
                    self.db,
                    "prune",
                    "success",
                    duration,
                    size_bytes=max(result.bytes_before - result.bytes_after, 0),
                    layer=result.layer,
                    count=result.deleted,
                    actor=actor,
                )
            deleted = {result.layer: result.deleted for result in results}
            self.events.publish("prune", {"status": "success", "deleted": deleted, "source": source})
        except Exception as err:
            log.warning("could not record the prune in the operation log", exc_info=True)
            message = err.message if isinstance(err, JameyError) else type(err).__name__
            return f"The prune is done, but recording it in the operation log failed ({message})."
        return None

    def close(self) -> None:
        """Release writers, connections and background threads that were opened."""
        for name in ("memory", "db", "events", "limiter"):
            component = self.__dict__.pop(name, None)
            close = getattr(component, "close", None)
            if close is not None:
                close()
