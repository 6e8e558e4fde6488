"""The notebook-facing runbooks: each step prints plainly, returns a table, and never raises a JameyError.

``notebooks/prune_memories.ipynb`` drives :class:`PruneRunbook` and
``notebooks/restore_backup.ipynb`` drives :class:`RestoreRunbook`; the rules they follow live in
``preflight.prune_steps`` and ``preflight.restore_steps``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import pandas as pd

from jamey_engine.durations import parse_duration
from jamey_engine.errors import JameyError
from jamey_engine.preflight.checks import Checks, Decision
from jamey_engine.preflight.prune_steps import (
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
    plan_restore,
    verify_restore,
)
from jamey_engine.runbooks.common import ChangingRunbook, Say, check_bool
from jamey_engine.runbooks.planned import (
    apply_hint,
    apply_plan,
    approval_message,
    decide_plan,
    fresh_record,
    make_plan,
    plan_step_actor,
    scheduled_confirm,
)
from jamey_engine.sizes import format_bytes

if TYPE_CHECKING:
    from jamey_engine.engine import Engine
    from jamey_engine.plans.actors import Actor
    from jamey_engine.plans.applying import ApplyResult
    from jamey_engine.plans.store import PlanRecord
    from jamey_engine.vault import BackupInfo


class _Stop(JameyError):
    """A runbook step decided to stop (a failed preflight or verification)."""


class _Outcome(Protocol):
    """What an apply step reports (a PruneOutcome or a DedupeOutcome)."""

    @property
    def decision(self) -> Decision: ...
    @property
    def notes(self) -> tuple[str, ...]: ...
    @property
    def applied(self) -> bool: ...
    @property
    def deleted(self) -> int: ...
    @property
    def backup(self) -> BackupInfo | None: ...
    def to_frame(self) -> pd.DataFrame: ...


class _Plan(Protocol):
    """What a layer-rewriting plan offers the summary (a PrunePlan or a DedupePlan)."""

    @property
    def phrase(self) -> str: ...
    @property
    def nothing_to_do(self) -> bool: ...


Plan = TypeVar("Plan", bound=_Plan)
Outcome = TypeVar("Outcome", bound=_Outcome)


class PlanContractSteps:
    """What a data-changing notebook runbook keeps of the plan contract (``runbooks/planned.py``):
    the stored plan it works on (``plan_id`` given, or the one its plan step stored), the actor
    that plans and applies, and what became of the plan."""

    action: str = ""  # the plan action (``jamey_engine/plans``)

    def _init_contract(
        self, plan_id: str = "", actor: Actor | None = None, run_schedule: int | None = None
    ) -> None:
        self.plan_id = plan_id
        self.run_schedule = int(run_schedule) if run_schedule is not None else None
        self.actor = actor or plan_step_actor(None, None)
        self.plan_record: PlanRecord | None = None
        self.plan_outcome: str | None = None
        self.plan_result: ApplyResult | None = None

    def _contract_facts(self) -> dict[str, Any]:
        record = fresh_record(getattr(self, "engine", None), self.plan_record)
        return {
            "plan_id": record.id if record else None,
            "plan_status": record.status if record else None,
            "requires_approval": record.requires_approval if record else None,
            "schedule": self.run_schedule,
        }


class LayerRewriteRunbook(ChangingRunbook, PlanContractSteps, Generic[Plan, Outcome]):
    """Base of the runbooks that rewrite memory layers through the prune compaction (prune,
    dedupe): the layers, the backup taken first, and the shared preflight, apply and verify steps.

    The change goes through the plan contract: the plan step stores a plan (or loads ``plan_id``)
    and the apply step applies exactly that plan (the contract takes the backup first)."""

    #: The outcome type the apply step builds (PruneOutcome, DedupeOutcome).
    outcome_type: type

    def __init__(
        self,
        engine: Engine | None,
        *,
        layers: tuple[str, ...] = (),
        dry_run: bool = True,
        backup_first: bool = True,
        confirm: str = "",
        plan_id: str = "",
        actor: Actor | None = None,
        say: Say = print,
    ) -> None:
        super().__init__(engine, dry_run=dry_run, confirm=confirm, say=say)
        self._init_contract(plan_id, actor)
        self.layers = layers
        self.backup_first = backup_first
        self.preflight_checks: Checks | None = None
        self.current_plan: Plan | None = None
        self.outcome: Outcome | None = None

    def _plan_parameters(self) -> dict[str, Any]:
        """The plan action's parameters for this run."""
        return {"layer": list(self.layers)}

    def _adopt(self, parameters: dict[str, Any]) -> None:
        """Take a stored plan's parameters as this run's."""
        self.layers = tuple(parameters["layer"])

    def _given_plan(self) -> None:
        """With ``plan_id``: load that plan (of this runbook's action) and take its parameters."""
        if not self.plan_id or self.plan_record is not None:
            return
        record = make_plan(self._engine, self.action, {}, self.actor, self.plan_id)
        self.plan_record = record
        self._adopt(dict(record.parameters))
        self.say(
            f"Plan {record.id} ({record.status}), planned by {record.planned_by}: its parameters are used."
        )

    def _store_plan(self, nothing_to_do: bool) -> None:
        """Store the plan of this run (unless one was given, or there is nothing to do) and say
        how to apply it."""
        if self.plan_record is None and not nothing_to_do:
            self.plan_record = make_plan(self._engine, self.action, self._plan_parameters(), self.actor)
        record = self.plan_record
        if record is None:
            return
        self.say(f"Plan {record.id} stored ({record.status}).")
        self.say(approval_message(record) if record.status == "pending_approval" else apply_hint(record))

    def _outcome_of(self, decision: Decision, result: ApplyResult | None) -> Outcome:
        run = result.native if result is not None else None
        backup = self._engine.vault.get(result.backup_id) if result is not None and result.backup_id else None
        outcome: Outcome = self.outcome_type(
            decision,
            self.current_plan,
            backup,
            tuple(run.results) if run is not None else (),
            run.duration if run is not None else 0.0,
            (run.note,) if run is not None and run.note else (),
        )
        return outcome

    def preflight(self) -> pd.DataFrame | None:
        """Run the preflight checks; any failure stops the runbook."""

        def body() -> pd.DataFrame:
            self._given_plan()  # an applying run checks the stored plan's layers
            checks = prune_preflight(self._engine, self.layers, backup_first=self.backup_first)
            self.preflight_checks = checks
            if not checks.ok:
                names = "; ".join(f"{c.name}: {c.detail}" for c in checks.failures)
                self.say("Preflight failed.")
                raise _Stop(f"preflight failed ({names}); nothing was changed")
            self.say("Preflight passed.")
            return checks.to_frame()

        return self._step("preflight", body)

    def _apply_step(
        self, apply: Callable[..., Outcome], done: Callable[[Outcome], str]
    ) -> pd.DataFrame | None:
        """The apply step: ``apply(engine, plan, dry_run=, confirm=, backup_first=)`` decides and
        (when confirmed) rewrites; ``done`` words what it did."""

        def body() -> pd.DataFrame | None:
            if self.current_plan is None:
                raise _Stop("there is no plan; run the plan step first")
            record = self.plan_record
            if record is None:  # nothing to do: the runbook's own rule says so, changing nothing
                outcome = apply(self._engine, self.current_plan, dry_run=True, confirm="", backup_first=False)
            else:
                confirm = scheduled_confirm(
                    record, self.run_schedule, self.dry_run, self.confirm, self.say, self.plan_id
                )
                decision, self.plan_outcome = decide_plan(
                    record, action=self.action, dry_run=self.dry_run, confirm=confirm, nothing_to_do=None
                )
                result = None
                if decision.go and self.plan_outcome == "applied":
                    self.say(decision.message)
                    if not self.backup_first:
                        self.say("backup_first=False: a plan always takes its backup first.")
                    result = apply_plan(self._engine, record, confirm, self.actor, self.say)
                    self.plan_result, self.plan_record = result, result.plan
                    decision = Decision("go", f"Applied plan {record.id}.")
                outcome = self._outcome_of(decision, result)
            self.outcome = outcome
            self._say_all(outcome.notes)
            self.say(outcome.decision.message)
            if not outcome.applied:
                return None
            if outcome.backup is not None:
                self.say(
                    f"Backup taken first: {outcome.backup.id} ({format_bytes(outcome.backup.size_bytes)})."
                )
            self.say(done(outcome))
            return outcome.to_frame()

        return self._step("apply", body)

    def _verify_step(self, verify: Callable[[Engine, Outcome], Checks]) -> pd.DataFrame | None:
        """The verify step: ``verify(engine, outcome)``; a failed check stops the runbook."""

        def body() -> pd.DataFrame:
            if self.outcome is None:
                raise _Stop("there is nothing to verify; the apply step did not run")
            checks = verify(self._engine, self.outcome)
            self.verification = checks
            if not checks.ok:
                raise _Stop("verification failed: " + "; ".join(c.detail for c in checks.failures))
            self.say("Verified." if self.outcome.applied else "Verified: nothing changed.")
            return checks.to_frame()

        return self._step("verify", body)

    def _summary(self, extra: dict[str, Any], applied: Callable[[int], str]) -> dict[str, Any]:
        """The facts every layer-rewriting runbook leaves as its record (``extra`` adds its own)
        and one closing line; ``applied(deleted)`` words a run that changed data.

        ``confirm_phrase`` is the exact text ``confirm`` must hold to apply the plan (None
        without a plan, or when there is nothing to do).
        """
        plan = self.current_plan
        outcome = self.outcome
        facts: dict[str, Any] = {
            "layers": list(self.layers),
            **extra,
            "dry_run": self.dry_run,
            "confirm_phrase": plan.phrase if plan is not None and not plan.nothing_to_do else None,
            "outcome": _outcome_name(outcome.decision.verdict) if outcome else None,
            "deleted": outcome.deleted if outcome else 0,
            "backup": outcome.backup.id if outcome and outcome.backup else None,
            "verified": self.verification.ok if self.verification else None,
            "error": self.error,
            **self._contract_facts(),
        }
        if self.plan_outcome is not None:
            facts["outcome"] = self.plan_outcome
        if self.error:
            self.say(f"Summary: stopped at {self.stopped_at}: {self.error}")
        elif outcome and outcome.applied:
            self.say(
                f"Summary: {applied(outcome.deleted)}"
                + (f" after backup {facts['backup']}" if facts["backup"] else " (no backup first)")
                + "; verified."
            )
        elif outcome:
            self.say(f"Summary: {outcome.decision.message}")
        return facts


class PruneRunbook(LayerRewriteRunbook[PrunePlan, PruneOutcome]):
    """The steps of ``notebooks/prune_memories.ipynb``; each prints plainly and returns a table."""

    action = "prune"
    outcome_type = PruneOutcome

    def __init__(
        self,
        engine: Engine | None,
        *,
        layers: tuple[str, ...] = (),
        older_than: str = "30d",
        dry_run: bool = True,
        backup_first: bool = True,
        confirm: str = "",
        say: Say = print,
    ) -> None:
        super().__init__(
            engine, layers=layers, dry_run=dry_run, backup_first=backup_first, confirm=confirm, say=say
        )
        self.older_than = older_than

    def _plan_parameters(self) -> dict[str, Any]:
        return {"layer": list(self.layers), "older_than": self.older_than}

    def _adopt(self, parameters: dict[str, Any]) -> None:
        self.layers = tuple(parameters["layer"])
        self.older_than = str(parameters["older_than"])

    @classmethod
    def open(
        cls,
        *,
        data_dir: str | Path | None = None,
        layer: str = "all",
        older_than: str = "30d",
        dry_run: bool = True,
        backup_first: bool = True,
        confirm: str = "",
        plan_id: str | None = "",
        run_actor: str | None = None,
        run_scope: str | None = None,
        run_schedule: int | None = None,
        say: Say = print,
    ) -> PruneRunbook:
        """Check the parameters and open the engine; a bad parameter stops the runbook with its message.

        ``plan_id`` names a stored prune plan to apply (its parameters replace these);
        ``run_actor``/``run_scope`` are set by the runner (who plans and applies)."""
        runbook = cls(None, say=say)
        runbook._init_contract(
            str(plan_id or "").strip(), plan_step_actor(run_actor, run_scope), run_schedule
        )

        def setup() -> None:
            runbook.layers = parse_layers(layer)
            parse_duration(older_than, field="older_than")
            runbook.older_than = str(older_than).strip().lower()
            runbook.backup_first = check_bool(backup_first, "backup_first")
            mode = runbook._open_engine(data_dir, dry_run, confirm)
            say(
                f"Prune memories older than {runbook.older_than} from {', '.join(runbook.layers)} "
                f"in {runbook._engine.settings.data_dir}: {mode}."
            )

        runbook._step("parameters", setup)
        return runbook

    def plan(self) -> pd.DataFrame | None:
        """Show what would be pruned per layer and the confirmation phrase."""

        def body() -> pd.DataFrame:
            self._given_plan()
            plan = plan_prune(self._engine, self.layers, self.older_than)
            self.current_plan = plan
            self.say(
                f"Would prune {plan.total_to_delete} memories older than {plan.older_than} "
                f"(before {plan.cutoff:%Y-%m-%d %H:%M} UTC), about {format_bytes(plan.total_bytes_to_free)}."
            )
            if plan.nothing_to_do:
                self.say("Nothing to prune.")
            else:
                self.say(f"To apply: dry_run=False and confirm={plan.phrase!r}")
            self._store_plan(plan.nothing_to_do)
            return plan.to_frame()

        return self._step("plan", body)

    def apply(self) -> pd.DataFrame | None:
        """Back up and prune when confirmed; otherwise say why nothing changed."""
        return self._apply_step(
            apply_prune, lambda done: f"Pruned {done.deleted} memories in {done.duration_seconds:.1f}s."
        )

    def verify(self) -> pd.DataFrame | None:
        """Check counts and sizes afterwards, and a sample search; a failed check stops the runbook."""
        return self._verify_step(verify_prune)

    def summary(self) -> dict[str, Any]:
        """One closing line, and the facts of the run as a dict (the record papermill leaves behind)."""
        return self._summary(
            {"older_than": self.older_than},
            lambda deleted: f"pruned {deleted} memories older than {self.older_than}",
        )


class RestoreRunbook(ChangingRunbook, PlanContractSteps):
    """The steps of ``notebooks/restore_backup.ipynb``; each prints plainly and returns a table.

    The restore goes through the plan contract (action ``restore``, scope ``admin``): the plan
    step stores a plan of the verified backup (or loads ``plan_id``), the apply step applies it."""

    action = "restore"

    def __init__(
        self,
        engine: Engine | None,
        *,
        backup_id: str = "",
        dry_run: bool = True,
        confirm: str = "",
        say: Say = print,
    ) -> None:
        super().__init__(engine, dry_run=dry_run, confirm=confirm, say=say)
        self._init_contract()
        self.backup_id = backup_id
        self.current_plan: RestoreRunPlan | None = None
        self.outcome: RestoreOutcome | None = None

    @classmethod
    def open(
        cls,
        *,
        data_dir: str | Path | None = None,
        backup_id: str = "",
        dry_run: bool = True,
        confirm: str = "",
        plan_id: str | None = "",
        run_actor: str | None = None,
        run_scope: str | None = None,
        run_schedule: int | None = None,
        say: Say = print,
    ) -> RestoreRunbook:
        """Check the parameters and open the engine; a bad parameter stops the runbook with its message.

        ``plan_id`` names a stored restore plan to apply (its backup replaces ``backup_id``);
        ``run_actor``/``run_scope`` are set by the runner (who plans and applies)."""
        runbook = cls(None, say=say)
        runbook._init_contract(
            str(plan_id or "").strip(), plan_step_actor(run_actor, run_scope), run_schedule
        )

        def setup() -> None:
            runbook.backup_id = "" if backup_id is None else str(backup_id).strip()
            mode = runbook._open_engine(data_dir, dry_run, confirm)
            which = runbook.backup_id or "the latest backup"
            say(f"Restore {which} into {runbook._engine.settings.data_dir}: {mode}.")

        runbook._step("parameters", setup)
        return runbook

    def backups(self) -> pd.DataFrame | None:
        """List the backups, newest first."""

        def body() -> pd.DataFrame:
            backups = self._engine.vault.list()
            self.say(f"{len(backups)} backup(s) in {self._engine.settings.backup_dir}.")
            return backups_frame(backups)

        return self._step("list", body)

    def plan(self) -> pd.DataFrame | None:
        """Verify the chosen backup and diff it against now; state the confirmation phrase."""

        def body() -> pd.DataFrame:
            if self.plan_id and self.plan_record is None:
                record = make_plan(self._engine, self.action, {}, self.actor, self.plan_id)
                self.plan_record = record
                self.backup_id = str(record.parameters.get("backup_id") or "")
                self.say(
                    f"Plan {record.id} ({record.status}), planned by {record.planned_by}: it restores {self.backup_id}."
                )
            plan = plan_restore(self._engine, self.backup_id)
            self.current_plan = plan
            backup = plan.backup
            self.say(
                f"Backup {backup.id} from {backup.created_at:%Y-%m-%d %H:%M} UTC, {format_bytes(backup.size_bytes)}."
            )
            if not plan.verified:
                where = f" in {plan.damaged_file}" if plan.damaged_file else ""
                self.say(f"Verification FAILED{where}: {plan.problem}")
                self.say("This backup cannot be restored.")
            else:
                self.say("Verified: every file matches its checksum.")
                self.say(f"To apply: dry_run=False and confirm={plan.phrase!r}")
                if self.plan_record is None:
                    self.plan_record = make_plan(
                        self._engine, self.action, {"backup_id": backup.id}, self.actor
                    )
                record = self.plan_record
                self.say(f"Plan {record.id} stored ({record.status}).")
                self.say(
                    approval_message(record) if record.status == "pending_approval" else apply_hint(record)
                )
            return plan.to_frame()

        return self._step("plan", body)

    def apply(self) -> None:
        """Restore when confirmed (the vault takes a safety backup first); otherwise say why not."""

        def body() -> None:
            if self.current_plan is None:
                raise _Stop("there is no plan; run the plan step first")
            record = self.plan_record
            if record is None:  # a damaged backup: the runbook's own rule refuses, changing nothing
                outcome = apply_restore(
                    self._engine, self.current_plan, dry_run=self.dry_run, confirm=self.confirm
                )
            else:
                confirm = scheduled_confirm(
                    record, self.run_schedule, self.dry_run, self.confirm, self.say, self.plan_id
                )
                decision, self.plan_outcome = decide_plan(
                    record, action="restore", dry_run=self.dry_run, confirm=confirm, nothing_to_do=None
                )
                outcome = RestoreOutcome(decision, self.current_plan)
                if decision.go and self.plan_outcome == "applied":
                    self.say(decision.message)
                    result = apply_plan(self._engine, record, confirm, self.actor, self.say)
                    self.plan_result, self.plan_record = result, result.plan
                    safety = (result.backup_id,) if result.backup_id else ()
                    outcome = RestoreOutcome(
                        Decision("go", f"Applied plan {record.id}."),
                        self.current_plan,
                        safety,
                        result.duration_seconds,
                    )
            self.outcome = outcome
            self.say(outcome.decision.message)
            if outcome.applied:
                if outcome.safety_backups:
                    self.say(
                        f"Safety backup of the data before the restore: {', '.join(outcome.safety_backups)}."
                    )
                self.say(f"Restored {outcome.plan.backup.id} in {outcome.duration_seconds:.1f}s.")

        self._step("apply", body)

    def verify(self) -> pd.DataFrame | None:
        """Check the counts against the backup; a failed check stops the runbook."""

        def body() -> pd.DataFrame:
            if self.outcome is None:
                raise _Stop("there is nothing to verify; the apply step did not run")
            checks = verify_restore(self._engine, self.outcome)
            self.verification = checks
            if not checks.ok:
                raise _Stop(
                    "verification failed: " + "; ".join(f"{c.name}: {c.detail}" for c in checks.failures)
                )
            self.say(
                "Verified: the data matches the backup."
                if self.outcome.applied
                else "Verified: nothing changed."
            )
            return checks.to_frame()

        return self._step("verify", body)

    def summary(self) -> dict[str, Any]:
        """One closing line, and the facts of the run as a dict."""
        plan = self.current_plan
        facts: dict[str, Any] = {
            "backup": plan.backup.id if plan else (self.backup_id or None),
            "verified_backup": plan.verified if plan else None,
            "dry_run": self.dry_run,
            # What confirm must hold to apply this plan (None when the backup cannot be restored).
            "confirm_phrase": plan.phrase if plan is not None and plan.verified else None,
            "outcome": _outcome_name(self.outcome.decision.verdict) if self.outcome else None,
            "safety_backups": list(self.outcome.safety_backups) if self.outcome else [],
            "verified": self.verification.ok if self.verification else None,
            "error": self.error,
            **self._contract_facts(),
        }
        if self.plan_outcome is not None:
            facts["outcome"] = self.plan_outcome
        if self.error:
            self.say(f"Summary: stopped at {self.stopped_at}: {self.error}")
        elif self.outcome and self.outcome.applied:
            self.say(
                f"Summary: restored {facts['backup']}; safety backup {', '.join(facts['safety_backups']) or 'none'}; verified."
            )
        elif self.outcome:
            self.say(f"Summary: {self.outcome.decision.message}")
        return facts


def _outcome_name(verdict: str) -> str:
    return "applied" if verdict == "go" else verdict
