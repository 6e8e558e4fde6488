"""The actions registry: what each data-changing action needs, checks, changes and verifies.

An action declares its parameters, the scope a key needs to plan, approve, apply or cancel it,
whether a backup is taken first, and its preflight. It never holds the engine's rules itself:
each step calls the engine function every door already used (``preflight.prune_steps.plan_prune``,
``Engine.dedupe``, ``run_retention``, ``Vault.restore``, ``KeyManager.revoke``…).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jamey_engine.config import FALSE_WORDS, TRUE_WORDS
from jamey_engine.errors import InvalidInput
from jamey_engine.preflight.checks import Checks

if TYPE_CHECKING:
    from jamey_engine.engine import Engine
    from jamey_engine.progress import Progress


@dataclass(frozen=True)
class Parameter:
    """One parameter of an action: its name, help, parser (raw text or JSON value -> stored value),
    and default (``required`` parameters have none)."""

    name: str
    help: str
    parse: Callable[[Any], Any]
    default: Any = None
    required: bool = False


@dataclass(frozen=True)
class Preview:
    """What a plan of an action found: ``summary`` (what will change, shown by every door),
    ``state`` (the facts the digest is computed from), the confirm ``phrase``, and the engine's
    own plan object (``native``) the apply step hands back to the engine."""

    summary: dict[str, Any]
    state: Any
    phrase: str
    native: Any = None


@dataclass(frozen=True)
class Change:
    """What the change step did: ``result`` (stored, shown), the engine's outcome (``native``,
    for the verify step), the backup it took itself, and a secret shown once (never stored)."""

    result: dict[str, Any]
    native: Any = None
    backup_id: str | None = None
    secret: str | None = field(default=None, repr=False)


class Action:
    """Base of every action; subclasses set the class attributes and the four steps."""

    name: str = ""
    scope: str = "admin"
    backup_first: bool = False
    description: str = ""
    parameters: tuple[Parameter, ...] = ()

    def check(self, raw: Mapping[str, Any] | None) -> dict[str, Any]:
        """The parameters, parsed and complete (defaults filled in), as stored in the plan.

        Raises InvalidInput naming an unknown parameter, a missing required one, or a bad value.
        """
        given = dict(raw or {})
        known = {parameter.name: parameter for parameter in self.parameters}
        unknown = [name for name in given if name not in known]
        if unknown:
            names = ", ".join(known) or "none"
            raise InvalidInput(
                f"parameter {unknown[0]!r} is not a parameter of {self.name}; its parameters: {names}"
            )
        checked: dict[str, Any] = {}
        for name, parameter in known.items():
            value = given.get(name)
            if value is None or value == "":
                if parameter.required:
                    raise InvalidInput(f"parameter {name!r} of {self.name} is required: {parameter.help}")
                checked[name] = parameter.default
                continue
            checked[name] = parameter.parse(value)
        return checked

    def preflight(self, engine: Engine, params: dict[str, Any]) -> Checks | None:
        """Check, changing nothing, that the change can run now; None when there is nothing to check."""
        return None

    def preview(self, engine: Engine, params: dict[str, Any]) -> Preview:
        """Compute exactly what would change; changes nothing."""
        raise NotImplementedError

    def preflight_and_preview(self, engine: Engine, params: dict[str, Any]) -> tuple[Preview, Checks | None]:
        """The preflight, then the preview (which may complete ``params``); an action whose
        preview needs what its preflight measured overrides this to measure it once."""
        checks = self.preflight(engine, params)
        return self.preview(engine, params), checks

    def change(
        self, engine: Engine, params: dict[str, Any], preview: Preview, actor: str, progress: Progress
    ) -> Change:
        """Make the change the fresh ``preview`` describes, on behalf of ``actor``."""
        raise NotImplementedError

    def verify(self, engine: Engine, params: dict[str, Any], preview: Preview, change: Change) -> Checks:
        """Check, changing nothing, that the store now shows the change."""
        raise NotImplementedError


def parse_flag(name: str) -> Callable[[Any], bool]:
    """A parser of a true/false parameter (true/false, yes/no, 1/0, on/off)."""

    def parse(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        lowered = str(value).strip().lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
        raise InvalidInput(f"parameter {name!r} is {value!r}; use true or false")

    return parse


def parse_text(name: str) -> Callable[[Any], str]:
    """A parser of a one-line text parameter (up to 200 characters)."""

    def parse(value: Any) -> str:
        text = str(value).strip()
        if len(text) > 200 or "\n" in text:
            raise InvalidInput(f"parameter {name!r} must be one line of at most 200 characters")
        return text

    return parse


_REGISTRY: dict[str, Action] = {}


def register(action: Action) -> Action:
    """Add ``action`` to the registry under its name."""
    _REGISTRY[action.name] = action
    return action


def get_action(name: str) -> Action:
    """The action called ``name``. Raises InvalidInput naming it and the known actions."""
    _load()
    try:
        return _REGISTRY[str(name)]
    except KeyError:
        raise InvalidInput(f"action {name!r} is unknown; use one of: {', '.join(_REGISTRY)}") from None


def all_actions() -> list[Action]:
    """Every action, in the order of ``names.ACTIONS``."""
    _load()
    return list(_REGISTRY.values())


_LOADED = threading.Event()
_LOADING = threading.Lock()


def _load() -> None:
    """Import the action modules once. Under a lock, and done only when all of them are in: a
    registry that merely is not empty may be one module into its first import in another
    thread (45 parallel first applies saw "action 'retention' is unknown")."""
    if _LOADED.is_set():
        return
    with _LOADING:
        from jamey_engine.plans import (  # noqa: F401
            key_actions,
            maintenance_actions,
            memory_actions,
            vault_actions,
        )

        _LOADED.set()
