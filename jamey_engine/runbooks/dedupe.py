"""The dedupe runbook: preflight, plan, apply (backup, dedupe), verify, summarize.

``notebooks/dedupe_memories.ipynb`` calls :class:`DedupeRunbook`; the rules are the dedupe
steps' (``preflight.dedupe_steps``), which the plan contract, the CLI and the workbench share.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from jamey_engine.preflight.dedupe_steps import (
    SHOWN_GROUPS,
    DedupeOutcome,
    DedupePlan,
    apply_dedupe,
    plan_dedupe,
    verify_dedupe,
)
from jamey_engine.preflight.prune_steps import parse_layers
from jamey_engine.runbooks.common import Say, check_bool
from jamey_engine.runbooks.steps import LayerRewriteRunbook, _Stop
from jamey_engine.sizes import format_bytes

if TYPE_CHECKING:
    from jamey_engine.engine import Engine


class DedupeRunbook(LayerRewriteRunbook[DedupePlan, DedupeOutcome]):
    """The steps of ``notebooks/dedupe_memories.ipynb``; each prints plainly and returns a table."""

    action = "dedupe"
    outcome_type = DedupeOutcome

    def __init__(
        self,
        engine: Engine | None,
        *,
        layers: tuple[str, ...] = (),
        dry_run: bool = True,
        backup_first: bool = True,
        confirm: str = "",
        say: Say = print,
    ) -> None:
        super().__init__(
            engine, layers=layers, dry_run=dry_run, backup_first=backup_first, confirm=confirm, say=say
        )

    @classmethod
    def open(
        cls,
        *,
        data_dir: str | Path | None = None,
        layer: str = "all",
        dry_run: bool = True,
        backup_first: bool = True,
        confirm: str = "",
        plan_id: str | None = "",
        run_actor: str | None = None,
        run_scope: str | None = None,
        run_schedule: int | None = None,
        say: Say = print,
    ) -> DedupeRunbook:
        """Check the parameters and open the engine; a bad parameter stops the runbook with its message.

        ``plan_id`` names a stored dedupe plan to apply (its layers replace ``layer``);
        ``run_actor``/``run_scope`` are set by the runner (who plans and applies)."""
        from jamey_engine.runbooks.planned import plan_step_actor

        runbook = cls(None, say=say)
        runbook._init_contract(
            str(plan_id or "").strip(), plan_step_actor(run_actor, run_scope), run_schedule
        )

        def setup() -> None:
            runbook.layers = parse_layers(layer)
            runbook.backup_first = check_bool(backup_first, "backup_first")
            mode = runbook._open_engine(data_dir, dry_run, confirm)
            say(
                f"Remove duplicate memories from {', '.join(runbook.layers)} "
                f"in {runbook._engine.settings.data_dir}: {mode}."
            )

        runbook._step("parameters", setup)
        return runbook

    def plan(self) -> pd.DataFrame | None:
        """Show the duplicates per layer, the bytes to free, and the confirmation phrase."""

        def body() -> pd.DataFrame:
            self._given_plan()
            plan = plan_dedupe(self._engine, self.layers)
            self.current_plan = plan
            self.say(
                f"Would delete {plan.total_to_delete} duplicate memories in {plan.total_groups} groups "
                f"(keeping the oldest of each), about {format_bytes(plan.total_bytes_to_free)}."
            )
            if plan.nothing_to_do:
                self.say("No duplicates.")
            else:
                self.say(f"To apply: dry_run=False and confirm={plan.phrase!r}")
            self._store_plan(plan.nothing_to_do)
            return plan.to_frame()

        return self._step("plan", body)

    def groups(self, top: int = SHOWN_GROUPS) -> pd.DataFrame | None:
        """The biggest duplicate groups of the plan (content, count, first, last, bytes of repeats)."""

        def body() -> pd.DataFrame:
            if self.current_plan is None:
                raise _Stop("there is no plan; run the plan step first")
            return self.current_plan.groups_frame(top)

        return self._step("groups", body)

    def apply(self) -> pd.DataFrame | None:
        """Back up and dedupe when confirmed; otherwise say why nothing changed."""
        return self._apply_step(
            apply_dedupe,
            lambda done: (
                f"Deleted {done.deleted} duplicate memories in {done.duration_seconds:.1f}s, "
                f"freeing {format_bytes(done.bytes_freed)}."
            ),
        )

    def verify(self) -> pd.DataFrame | None:
        """Check counts, that no duplicate is left and the oldest copies are kept; a failure stops it."""
        return self._verify_step(verify_dedupe)

    def summary(self) -> dict[str, Any]:
        """One closing line, and the facts of the run as a dict (the record papermill leaves behind)."""
        plan = self.current_plan
        return self._summary(
            {
                "groups": plan.total_groups if plan else None,
                "duplicates": plan.total_to_delete if plan else None,
                "bytes_to_free": plan.total_bytes_to_free if plan else None,
                "bytes_freed": self.outcome.bytes_freed if self.outcome else 0,
            },
            lambda deleted: f"deleted {deleted} duplicate memories",
        )
