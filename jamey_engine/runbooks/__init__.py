"""Runbooks: the logic behind the notebooks in ``notebooks/``, kept in the engine.

The notebooks call the ``*Runbook.open(...)`` classes, whose steps print plainly and never
raise a JameyError; the functions they wrap (``plan_prune``, ``apply_restore``...) raise
normally, for the CLI, the workbench and tests.
"""

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
