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
    from jamey_engine.preflight.checks import (
        Check,
        Checks,
        Decision,
        confirmation_matches,
        decide,
        normalize_phrase,
    )
    from jamey_engine.preflight.dedupe_steps import (
        DedupeOutcome,
        DedupePlan,
        apply_dedupe,
        plan_dedupe,
        verify_dedupe,
    )
    from jamey_engine.preflight.prune_steps import (
        LayerPlan,
        PruneOutcome,
        PrunePlan,
        apply_prune,
        parse_layers,
        plan_prune,
        prune_preflight,
        verify_prune,
    )
    from jamey_engine.preflight.restore_steps import (
        RestoreOutcome,
        RestoreRunPlan,
        apply_restore,
        backups_frame,
        choose_backup,
        plan_restore,
        verify_restore,
    )
    from jamey_engine.runbooks.common import NotebookRunbook, engine_for
    from jamey_engine.runbooks.dedupe import DedupeRunbook
    from jamey_engine.runbooks.explore import MemoryExplorer
    from jamey_engine.runbooks.growth_report import GrowthReport
    from jamey_engine.runbooks.steps import PruneRunbook, RestoreRunbook

_WHERE: dict[str, str] = {
    "Check": "jamey_engine.preflight.checks",
    "Checks": "jamey_engine.preflight.checks",
    "Decision": "jamey_engine.preflight.checks",
    "DedupeOutcome": "jamey_engine.preflight.dedupe_steps",
    "DedupePlan": "jamey_engine.preflight.dedupe_steps",
    "DedupeRunbook": "jamey_engine.runbooks.dedupe",
    "GrowthReport": "jamey_engine.runbooks.growth_report",
    "LayerPlan": "jamey_engine.preflight.prune_steps",
    "MemoryExplorer": "jamey_engine.runbooks.explore",
    "NotebookRunbook": "jamey_engine.runbooks.common",
    "PruneOutcome": "jamey_engine.preflight.prune_steps",
    "PrunePlan": "jamey_engine.preflight.prune_steps",
    "PruneRunbook": "jamey_engine.runbooks.steps",
    "RestoreOutcome": "jamey_engine.preflight.restore_steps",
    "RestoreRunPlan": "jamey_engine.preflight.restore_steps",
    "RestoreRunbook": "jamey_engine.runbooks.steps",
    "apply_dedupe": "jamey_engine.preflight.dedupe_steps",
    "apply_prune": "jamey_engine.preflight.prune_steps",
    "apply_restore": "jamey_engine.preflight.restore_steps",
    "backups_frame": "jamey_engine.preflight.restore_steps",
    "choose_backup": "jamey_engine.preflight.restore_steps",
    "confirmation_matches": "jamey_engine.preflight.checks",
    "decide": "jamey_engine.preflight.checks",
    "engine_for": "jamey_engine.runbooks.common",
    "normalize_phrase": "jamey_engine.preflight.checks",
    "parse_layers": "jamey_engine.preflight.prune_steps",
    "plan_dedupe": "jamey_engine.preflight.dedupe_steps",
    "plan_prune": "jamey_engine.preflight.prune_steps",
    "plan_restore": "jamey_engine.preflight.restore_steps",
    "prune_preflight": "jamey_engine.preflight.prune_steps",
    "verify_dedupe": "jamey_engine.preflight.dedupe_steps",
    "verify_prune": "jamey_engine.preflight.prune_steps",
    "verify_restore": "jamey_engine.preflight.restore_steps",
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
