"""Scopes: what a key may do, defined once for the engine, the CLI, the HTTP API and the workbench.

``admin`` grants every scope. ``ops:write`` grants ``ops:read``. The other scopes grant only
themselves. Front doors never compare scope strings themselves: they call :func:`has_scope` or
:func:`require_scope`, so one rule decides everywhere.

Memory *content* (the text of memories, and any artifact that quotes it) needs ``memory:read`` on
every door; counts, sizes and charts need only ``ops:read``. :func:`require_memory_content` is that
rule; the workbench only hides what it would refuse.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

from jamey_engine.errors import Forbidden

Scope = Literal["memory:read", "memory:write", "alerts:write", "ops:read", "ops:write", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
ADMIN: Scope = "admin"
# What a new key may do when its creator names no scope, at every door (CLI, HTTP, workbench).
DEFAULT_SCOPES: tuple[Scope, ...] = ("memory:read",)
# The scope that reads what memories say (search hits, artifacts quoting them), on every door.
MEMORY_CONTENT: Scope = "memory:read"

SCOPE_DESCRIPTIONS: dict[str, str] = {
    "memory:read": "search and read memories' content (the HTTP API, the workbench's search, run files quoting memories)",
    "memory:write": "store and delete memories through the HTTP API",
    "alerts:write": "deliver Alertmanager notifications to the webhook receiver",
    "ops:read": "sign in to the workbench and view dashboards, alerts, memory, backups and runbooks",
    "ops:write": "ops:read, and operate: run runbooks, silence alerts, create backups, prune, apply retention",
    "admin": "everything: keys, restores, deleting backups, retention policies, and every other scope",
}

_COLLECTIONS = (tuple, list, set, frozenset)  # built once: ``tuple | list ...`` makes a new union per call
# What a scope grants besides itself (admin, which grants everything, is checked on its own).
_IMPLIES: dict[str, frozenset[str]] = {"ops:write": frozenset({"ops:read"})}


def has_scope(scopes: Iterable[str], needed: str | None) -> bool:
    """True when ``scopes`` grant ``needed`` (None needs no scope). Cheap: it is on every request."""
    if needed is None:
        return True
    held = scopes if isinstance(scopes, _COLLECTIONS) else tuple(scopes)
    return needed in held or ADMIN in held or any(needed in _IMPLIES.get(scope, ()) for scope in held)


def require_scope(name: str, scopes: Iterable[str], needed: str | None) -> None:
    """Raise Forbidden, naming the key, the scope it lacks and what it has, unless ``scopes``
    grant ``needed``."""
    held = tuple(scopes)
    if not has_scope(held, needed):
        raise Forbidden(
            f"key {name!r} lacks the scope {needed!r} (it has: {', '.join(held) or 'none'}); "
            f"{needed} lets a key {SCOPE_DESCRIPTIONS.get(str(needed), 'do this')}."
        )


def can_read_memory_content(scopes: Iterable[str]) -> bool:
    """True when ``scopes`` may see what memories say (search hits, artifacts quoting them)."""
    return has_scope(scopes, MEMORY_CONTENT)


def require_memory_content(name: str, scopes: Iterable[str]) -> None:
    """Raise Forbidden naming the key unless ``scopes`` may read memory content (``memory:read``):
    the one rule for every door that shows what memories say."""
    require_scope(name, scopes, MEMORY_CONTENT)
