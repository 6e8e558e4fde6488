"""Who may read a run's files: the executed notebook and its HTML.

A run's record (status, progress, summary: counts and sizes) needs ``ops:read``. The files of a
runbook that quotes memory content (explore's repeated memories and oldest/newest, dedupe's
groups) need ``memory:read`` as well: memory content needs ``memory:read`` on every door
(:func:`jamey_engine.keys.scopes.require_memory_content`). The HTTP routes and the workbench's run
view both call :func:`require_files`, so the rule is decided here once.
"""

from __future__ import annotations

from collections.abc import Iterable

from jamey_engine.keys.scopes import can_read_memory_content, require_memory_content

# Runbooks whose executed notebook prints memories' text (not only counts and charts).
QUOTES_MEMORY = frozenset({"explore_memories", "dedupe_memories"})


def quotes_memory(runbook: str) -> bool:
    """True when the files of a run of ``runbook`` may contain memory content."""
    return runbook in QUOTES_MEMORY


def can_read_files(scopes: Iterable[str], runbook: str) -> bool:
    """True when a key holding ``scopes`` (already allowed ``ops:read``) may read the files of a
    run of ``runbook``."""
    return not quotes_memory(runbook) or can_read_memory_content(scopes)


def require_files(name: str, scopes: Iterable[str], runbook: str) -> None:
    """Raise Forbidden naming the key and ``memory:read`` unless it may read the files of a run
    of ``runbook`` (one that quotes memory content needs ``memory:read``)."""
    if quotes_memory(runbook):
        require_memory_content(name, scopes)
