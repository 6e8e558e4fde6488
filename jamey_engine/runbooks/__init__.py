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
    "GrowthReport",
    "LayerPlan",
    "NotebookRunbook",
    "PruneOutcome",
    "PrunePlan",
    "PruneRunbook",
    "RestoreOutcome",
    "RestoreRunPlan",
    "RestoreRunbook",
    "apply_prune",
    "apply_restore",
    "backups_frame",
    "choose_backup",
    "confirmation_matches",
    "decide",
    "engine_for",
    "normalize_phrase",
    "parse_layers",
    "plan_prune",
    "plan_restore",
    "prune_preflight",
    "verify_prune",
    "verify_restore",
]
