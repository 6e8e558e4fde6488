"""Runbooks: the logic behind the notebooks in ``notebooks/``, kept in the engine.

The notebooks call the ``*Runbook.open(...)`` classes, whose steps print plainly and never
raise a JameyError; the functions they wrap (``plan_prune``, ``apply_restore``...) raise
normally, for the CLI, the workbench and tests.

The names below are imported on first use, so a process that needs only the run records or the
catalog (the runner, the service) does not pay for pandas and the runbook logic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jamey_engine.runbooks.common import (
        Check,
        Checks,
        Decision,
        NotebookRunbook,
        confirmation_matches,
        decide,
        engine_for,
        normalize_phrase,
    )
    from jamey_engine.runbooks.dedupe import (
        DedupeOutcome,
        DedupePlan,
        DedupeRunbook,
        apply_dedupe,
        plan_dedupe,
        verify_dedupe,
    )
    from jamey_engine.runbooks.explore import MemoryExplorer
    from jamey_engine.runbooks.growth_report import GrowthReport
    from jamey_engine.runbooks.prune import (
        LayerPlan,
        PruneOutcome,
        PrunePlan,
        apply_prune,
        parse_layers,
        plan_prune,
        prune_preflight,
        verify_prune,
    )
    from jamey_engine.runbooks.restore import (
        RestoreOutcome,
        RestoreRunPlan,
        apply_restore,
        backups_frame,
        choose_backup,
        plan_restore,
        verify_restore,
    )
    from jamey_engine.runbooks.steps import PruneRunbook, RestoreRunbook

_WHERE: dict[str, str] = {
    "Check": "jamey_engine.runbooks.common",
    "Checks": "jamey_engine.runbooks.common",
    "Decision": "jamey_engine.runbooks.common",
    "DedupeOutcome": "jamey_engine.runbooks.dedupe",
    "DedupePlan": "jamey_engine.runbooks.dedupe",
    "DedupeRunbook": "jamey_engine.runbooks.dedupe",
    "GrowthReport": "jamey_engine.runbooks.growth_report",
    "LayerPlan": "jamey_engine.runbooks.prune",
    "MemoryExplorer": "jamey_engine.runbooks.explore",
    "NotebookRunbook": "jamey_engine.runbooks.common",
    "PruneOutcome": "jamey_engine.runbooks.prune",
    "PrunePlan": "jamey_engine.runbooks.prune",
    "PruneRunbook": "jamey_engine.runbooks.steps",
    "RestoreOutcome": "jamey_engine.runbooks.restore",
    "RestoreRunPlan": "jamey_engine.runbooks.restore",
    "RestoreRunbook": "jamey_engine.runbooks.steps",
    "apply_dedupe": "jamey_engine.runbooks.dedupe",
    "apply_prune": "jamey_engine.runbooks.prune",
    "apply_restore": "jamey_engine.runbooks.restore",
    "backups_frame": "jamey_engine.runbooks.restore",
    "choose_backup": "jamey_engine.runbooks.restore",
    "confirmation_matches": "jamey_engine.runbooks.common",
    "decide": "jamey_engine.runbooks.common",
    "engine_for": "jamey_engine.runbooks.common",
    "normalize_phrase": "jamey_engine.runbooks.common",
    "parse_layers": "jamey_engine.runbooks.prune",
    "plan_dedupe": "jamey_engine.runbooks.dedupe",
    "plan_prune": "jamey_engine.runbooks.prune",
    "plan_restore": "jamey_engine.runbooks.restore",
    "prune_preflight": "jamey_engine.runbooks.prune",
    "verify_dedupe": "jamey_engine.runbooks.dedupe",
    "verify_prune": "jamey_engine.runbooks.prune",
    "verify_restore": "jamey_engine.runbooks.restore",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Check",
    "Checks",
    "Decision",
    "DedupeOutcome",
    "DedupePlan",
    "DedupeRunbook",
    "GrowthReport",
    "LayerPlan",
    "MemoryExplorer",
    "NotebookRunbook",
    "PruneOutcome",
    "PrunePlan",
    "PruneRunbook",
    "RestoreOutcome",
    "RestoreRunPlan",
    "RestoreRunbook",
    "apply_dedupe",
    "apply_prune",
    "apply_restore",
    "backups_frame",
    "choose_backup",
    "confirmation_matches",
    "decide",
    "engine_for",
    "normalize_phrase",
    "parse_layers",
    "plan_dedupe",
    "plan_prune",
    "plan_restore",
    "prune_preflight",
    "verify_dedupe",
    "verify_prune",
    "verify_restore",
]
