"""The engine facade: one object that front doors (CLI, service, workbench, notebooks) hold.

It builds each component lazily from one Settings, so a command that only reads
index sizes never opens the database, and vice versa.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Protocol, TypeVar

from jamey_engine.config import Settings
from jamey_engine.errors import InvalidInput, JameyError
from jamey_engine.sizes import bytes_freed

if TYPE_CHECKING:
    from jamey_engine.db import Database
    from jamey_engine.events import EventPublisher
    from jamey_engine.keys import KeyManager
    from jamey_engine.keys.ratelimit import RateLimiter
    from jamey_engine.memory import MemoryStore
    from jamey_engine.memory.analysis import MemoryAnalysis
    from jamey_engine.memory.dedupe import DedupeResult
    from jamey_engine.memory.model import PruneResult
    from jamey_engine.progress import Progress
    from jamey_engine.retention import RetentionPolicies, RetentionRun
    from jamey_engine.vault import Vault


log = logging.getLogger(__name__)


class _LayerChange(Protocol):
    """What a prune or dedupe reports per layer (for the operation log)."""

    @property
    def layer(self) -> str: ...
    @property
    def deleted(self) -> int: ...
    @property
    def bytes_before(self) -> int: ...
    @property
    def bytes_after(self) -> int: ...


Change = TypeVar("Change", bound=_LayerChange)


@dataclass(frozen=True)
class PruneRun:
    """A real prune: each layer's result, how long it took, and a note when it went unrecorded."""

    results: list[PruneResult]
    duration: float
    note: str | None = None


@dataclass(frozen=True)
class DedupeRun:
    """A dedupe (real, or a dry run): each layer's result, how long it took, and a note when it
    went unrecorded."""

    results: list[DedupeResult]
    duration: float
    note: str | None = None


class Engine:
    """Holds one Settings and the components built from it.

    Building one sets the owner-only umask and checks the data dir (see ``privacy``): raises
    DataDirNotPrivate for a group- or world-accessible one unless JAMEY_ALLOW_SHARED_DATA_DIR
    is set. ``check_data_dir=False`` is for ``jamey doctor``, which reports such a dir instead.
    """

    def __init__(self, settings: Settings | None = None, *, check_data_dir: bool = True) -> None:
        from jamey_engine import privacy

        privacy.set_private_umask()
        self.settings = settings or Settings.from_env()
        if check_data_dir:
            privacy.check_data_dir(self.settings)

    @cached_property
    def memory(self) -> MemoryStore:
        from jamey_engine.memory import MemoryStore
        from jamey_engine.vault.restore_journal import needs_recovery, recover

        store = MemoryStore.from_settings(self.settings)
        if needs_recovery(store.generations.root, self.settings.data_dir):  # a restore was killed
            recover(store, self.db, self.settings.data_dir)
        return store

    @cached_property
    def analysis(self) -> MemoryAnalysis:
        """DataFrames, histograms, top terms and duplicates of the memory layers (read-only)."""
        from jamey_engine.memory.analysis import MemoryAnalysis

        return MemoryAnalysis(self.memory)

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
        results, duration, note = self._recorded(
            "prune",
            source,
            actor,
            lambda: self.memory.prune(older_than, layers, dry_run=False, progress=progress),
            record_bad_input=False,
        )
        return PruneRun(results, duration, note)

    @cached_property
    def retention(self) -> RetentionPolicies:
        from jamey_engine.retention import RetentionPolicies

        return RetentionPolicies(self.db)

    def apply_retention(
        self,
        *,
        dry_run: bool = False,
        actor: str = "retention",
        progress: Progress | None = None,
        wait: bool = True,
    ) -> RetentionRun:
        """Plan (``dry_run``) or apply every layer's retention policy, one layer at a time, through
        the same prune as everywhere else, on behalf of ``actor`` (``retention`` for the schedule).

        An applied run is recorded in the operation log (a row per layer and one for the run,
        failures included); see :func:`jamey_engine.retention.run_retention`. Raises Busy when
        another retention run holds the lock past the lock timeout (Conflict at once when not
        ``wait``), StorageCorrupt for a damaged layer.
        """
        from jamey_engine.retention import run_retention

        return run_retention(self, dry_run=dry_run, actor=actor, progress=progress, wait=wait)

    def flush_key_usage(self) -> None:
        """Write the keys' pending last-used times and usage counts, if the key manager was ever
        built (a process that verified no key has none to write). Never raises."""
        keys = self.__dict__.get("keys")
        if keys is not None:
            keys.flush_last_used()

    def dedupe(
        self,
        layers: Sequence[str] | None = None,
        *,
        source: str,
        actor: str | None = None,
        normalize: bool = True,
        progress: Progress | None = None,
        dry_run: bool = False,
    ) -> DedupeRun:
        """Delete duplicate memories in ``layers`` (None: all) for real, keeping the oldest of each
        group, and record the run (one ``dedupe`` operation-log row per layer and a ``dedupe``
        event) for ``source`` on behalf of ``actor``, as :meth:`prune` does.

        With ``dry_run`` nothing is deleted nor recorded: the results say what would go (every
        door's dry run comes here, so it counts exactly what the real dedupe would delete).
        Recording is best effort (the run's ``note`` says when it failed); a failed dedupe is
        recorded as a failure and re-raised; bad input (InvalidInput) records nothing.
        """
        import time

        from jamey_engine.memory.dedupe import dedupe_layer
        from jamey_engine.memory.layers import check_layers

        chosen = check_layers(layers)
        if dry_run:
            started = time.monotonic()
            planned = [
                dedupe_layer(self.memory, layer, normalize=normalize, dry_run=True, progress=progress)
                for layer in chosen
            ]
            return DedupeRun(planned, time.monotonic() - started)
        results, duration, note = self._recorded(
            "dedupe",
            source,
            actor,
            lambda: [
                dedupe_layer(self.memory, layer, normalize=normalize, dry_run=False, progress=progress)
                for layer in chosen
            ],
        )
        return DedupeRun(results, duration, note)

    def _recorded(
        self,
        kind: str,
        source: str,
        actor: str | None,
        work: Callable[[], list[Change]],
        *,
        record_bad_input: bool = True,
    ) -> tuple[list[Change], float, str | None]:
        """Run ``work`` (a real prune or dedupe, one result per layer) and record it: one
        operation-log row per layer (bytes freed, documents deleted) and one ``kind`` event, by
        ``actor`` (default: the front door, ``source``), best effort. A failure is recorded and
        re-raised (InvalidInput too, unless ``record_bad_input`` is False: bad input changed
        nothing). Returns the results, the seconds taken and the note of a failed record."""
        from jamey_engine import oplog

        started = time.monotonic()
        who = actor or source
        try:
            results = work()
        except JameyError as err:
            if record_bad_input or not isinstance(err, InvalidInput):
                failed = {"status": "failure", "detail": err.message, "source": source}
                elapsed = time.monotonic() - started
                oplog.record(
                    self.db,
                    self.events,
                    kind,
                    "failure",
                    elapsed,
                    event=failed,
                    detail=err.message,
                    actor=who,
                )
            raise
        duration = time.monotonic() - started
        rows = [{"size_bytes": bytes_freed(r), "layer": r.layer, "count": r.deleted} for r in results]
        event = {"status": "success", "deleted": {r.layer: r.deleted for r in results}, "source": source}
        note = oplog.record(
            self.db, self.events, kind, "success", duration, rows=rows, event=event, actor=who
        )
        return results, duration, note

    def close(self) -> None:
        """Release writers, connections and background threads that were opened."""
        for name in ("analysis", "memory", "db", "events", "limiter"):
            component = self.__dict__.pop(name, None)
            close = getattr(component, "close", None)
            if close is not None:
                close()
