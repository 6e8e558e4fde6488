"""The engine facade: one object that front doors (CLI, service, workbench, notebooks) hold.

It builds each component lazily from one Settings, so a command that only reads
index sizes never opens the database, and vice versa.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from jamey_engine.config import Settings

if TYPE_CHECKING:
    from jamey_engine.db import Database
    from jamey_engine.events import EventPublisher
    from jamey_engine.keys import KeyManager
    from jamey_engine.memory import MemoryStore
    from jamey_engine.ratelimit import RateLimiter
    from jamey_engine.vault import Vault


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
        from jamey_engine.ratelimit import RateLimiter

        return RateLimiter.from_settings(self.settings)

    @cached_property
    def vault(self) -> Vault:
        from jamey_engine.vault import Vault

        return Vault(self.settings, memory=self.memory, db=self.db, events=self.events)

    @cached_property
    def events(self) -> EventPublisher:
        from jamey_engine.events import EventPublisher

        return EventPublisher.from_settings(self.settings)

    def close(self) -> None:
        """Release writers, connections and background threads that were opened."""
        for name in ("memory", "db", "events", "limiter"):
            component = self.__dict__.pop(name, None)
            close = getattr(component, "close", None)
            if close is not None:
                close()
