"""Who plans, approves and applies: an API key, or the CLI on the host itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from jamey_engine.keys.scopes import has_scope, require_scope

if TYPE_CHECKING:
    from jamey_engine.keys.verify import VerifiedKey

CLI_NAME = "cli"


@dataclass(frozen=True)
class Actor:
    """A person acting through a door: a verified key (``key_id`` set) or the CLI (``key_id`` None).

    The CLI runs on the host with the data dir in reach, so it holds every scope; but it is no
    key, so it can never approve a plan (an approval must name a second person's key).
    """

    name: str
    scopes: tuple[str, ...]
    key_id: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        """The CLI's own actor: every scope, no key."""
        return cls(CLI_NAME, ("admin",), None)

    @classmethod
    def from_key(cls, key: VerifiedKey) -> Actor:
        """The actor of a verified key."""
        return cls(key.name, tuple(key.scopes), key.id)

    def may(self, scope: str) -> bool:
        """True when this actor holds ``scope``."""
        return has_scope(self.scopes, scope)

    def require(self, scope: str) -> None:
        """Raise Forbidden, naming the key and the scope, unless this actor holds ``scope``."""
        require_scope(self.name, self.scopes, scope)
