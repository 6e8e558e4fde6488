"""Runbook notebooks over the plan contract: a dry run plans, an applying run applies that plan.

Every data-changing notebook follows one rule (``jamey_engine/plans``):

* a **dry run** (``dry_run=True``, the default) creates the plan and returns its ``plan_id`` and
  ``confirm_phrase`` in the summary; nothing else changes;
* an **applying run** (``plan_id`` set, ``dry_run=False``, ``confirm`` its phrase) applies exactly
  that plan (the contract refuses it when stale, expired, unapproved or already applied);
* the **unattended form** (``dry_run=False`` and ``confirm`` without ``plan_id``) plans and applies
  in one go under the same rules, and stops with a plain message when the plan needs a second
  key's approval: the plan then waits in ``pending_approval`` like any other.

:class:`PlannedRunbook` is the notebook side (each step prints plainly and never raises a
JameyError); ``plan_step_actor`` says who plans: the key that started the run (the runner passes
its name and the scope it was checked for), or, under plain papermill, the host's user.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from jamey_engine.errors import Conflict
from jamey_engine.preflight.checks import Checks, Decision, decide
from jamey_engine.runbooks.common import ChangingRunbook, Say

if TYPE_CHECKING:
    from jamey_engine.plans.actors import Actor
    from jamey_engine.plans.applying import ApplyResult
    from jamey_engine.plans.store import PlanRecord

#: Who plans when a notebook runs under plain papermill (the host's user, like the CLI).
NOTEBOOK_ACTOR = "runbook"  # what the runbooks recorded as their actor before plans


def plan_step_actor(run_actor: str | None, run_scope: str | None) -> Actor:
    """The actor a notebook plans and applies as: the runner passes the run's actor and the scope
    its start was checked for (``run_actor``, ``run_scope``); without them (plain papermill on the
    host, with the data dir in reach) the notebook holds every scope, as the CLI does. Never a key:
    a notebook cannot approve its own plan."""
    from jamey_engine.plans.actors import Actor

    if run_actor:
        return Actor(str(run_actor)[:100], (str(run_scope or "ops:write"),), None)
    return Actor(NOTEBOOK_ACTOR, ("admin",), None)


def approval_message(record: PlanRecord) -> str:
    """What to do with a plan that waits for a second key."""
    return (
        f"Plan {record.id} needs approval by a second key before it can be applied; nothing was changed. "
        f"Approve it in the workbench's Approvals section or with "
        f"`jamey plans approve {record.id} --comment TEXT --key-file PATH`, then run again with "
        f"-p plan_id {record.id} -p dry_run False -p confirm {record.confirm_phrase!r}."
    )


# Actions whose apply shows a secret once (a rotated key's new plaintext). A run keeps its executed
# notebook on disk, so a runbook plans them but leaves the apply to a door that shows it once.
SECRET_ACTIONS = frozenset({"key-rotate"})


def secret_message(record: PlanRecord) -> str:
    """Why a runbook does not apply ``record`` itself, and where to apply it."""
    return (
        f"Not applied here: the new key's secret is shown once by the door that applies plan {record.id}, "
        f"and a runbook run keeps its output on disk. Apply it with `jamey plans apply {record.id} --confirm "
        f"{record.confirm_phrase!r}` or in the workbench (Keys page, or Approvals), which show the new key once. "
        "Nothing was changed."
    )


def apply_hint(record: PlanRecord) -> str:
    """How to apply ``record`` from this notebook."""
    return (
        f"To apply plan {record.id}: dry_run=False, plan_id={record.id!r} and confirm={record.confirm_phrase!r} "
        f"(or jamey plans apply {record.id} --confirm {record.confirm_phrase!r})."
    )


@dataclass
class PlanStep:
    """The plan a run works on and what became of it: the plan record, its apply's result, and
    the outcome (``dry_run``, ``noop``, ``refused``, ``pending_approval``, ``applied``)."""

    record: PlanRecord | None = None
    result: ApplyResult | None = None
    outcome: str | None = None


def make_plan(
    engine: Any, action: str, parameters: dict[str, Any], actor: Actor, plan_id: str = ""
) -> PlanRecord:
    """The plan a run works on: the stored plan ``plan_id`` (which must be a plan of ``action``),
    else a new plan of ``action`` with ``parameters``. Raises NotFound, Conflict, and the
    errors of :func:`jamey_engine.plans.planning.plan`."""
    from jamey_engine.plans import recovery
    from jamey_engine.plans.planning import plan

    if plan_id:
        record = recovery.get(engine, plan_id)
        if record.action != action:
            raise Conflict(f"plan {record.id} is a {record.action} plan; this runbook applies {action} plans")
        return record
    return plan(engine, action, parameters, actor)


def decide_plan(
    record: PlanRecord, *, action: str, dry_run: bool, confirm: object, nothing_to_do: str | None
) -> tuple[Decision, str]:
    """The apply step's decision on ``record`` and the outcome name: the runbooks' one rule
    (``common.decide``), then a plan that waits for approval is not applied."""
    decision = decide(
        action=action,
        phrase=record.confirm_phrase,
        dry_run=dry_run,
        confirm=confirm,
        nothing_to_do=nothing_to_do,
    )
    if decision.verdict == "dry_run":
        return (
            Decision(
                "dry_run",
                f"Dry run: nothing was changed. Plan {record.id} is stored ({record.status}, expires "
                f"{record.expires_at:%Y-%m-%d %H:%M} UTC). {apply_hint(record)}",
            ),
            "dry_run",
        )
    if decision.go and record.status == "pending_approval":
        return Decision("refused", approval_message(record)), "pending_approval"
    return decision, "applied" if decision.go else decision.verdict


def apply_plan(engine: Any, record: PlanRecord, confirm: object, actor: Actor, say: Say) -> ApplyResult:
    """Apply ``record`` through the contract, saying each stage once. Raises what ``apply`` raises."""
    from jamey_engine.plans.applying import apply

    seen: list[str] = []

    def progress(done: int, total: int, stage: str) -> None:
        if not seen or seen[-1] != stage:
            seen.append(stage)
            say(f"  {stage}")

    return apply(engine, record.id, confirm, actor, progress)


def scheduled_confirm(
    record: PlanRecord, run_schedule: int | None, dry_run: bool, confirm: str, say: Say, given_plan: str = ""
) -> str:
    """The confirm phrase an apply step uses: a run that a schedule started, that is no dry run
    and that made its plan itself applies that plan (the schedule is the standing confirmation);
    any other run (a ``given_plan`` included), what ``confirm`` holds."""
    if run_schedule is None or dry_run or given_plan:
        return confirm
    say(f"Confirmed by schedule {run_schedule}: a scheduled run applies the plan it made.")
    return record.confirm_phrase


def fresh_record(engine: Any, record: PlanRecord | None) -> PlanRecord | None:
    """``record`` as the store has it now (a refused apply may have marked it stale), or as it
    was when it cannot be read."""
    from jamey_engine.errors import JameyError
    from jamey_engine.plans import store

    if record is None or engine is None:
        return record
    try:
        return store.get(engine.db, record.id)
    except JameyError:
        return record


def summary_frame(summary: dict[str, Any]) -> pd.DataFrame:
    """A plan's summary as a table: its per-layer rows when it has them, else one row per fact."""
    rows = summary.get("layers")
    if isinstance(rows, list) and rows and all(isinstance(row, dict) for row in rows):
        return pd.DataFrame(rows)
    facts = [
        {"fact": name, "value": value if not isinstance(value, (dict, list)) else str(value)}
        for name, value in summary.items()
        if name not in ("preflight", "backup_first")
    ]
    return pd.DataFrame(facts, columns=["fact", "value"])


class PlannedRunbook(ChangingRunbook):
    """The steps of a notebook that changes data through one plan action (``take_backup``,
    ``flush_memory_log``, ``apply_retention``, ``rotate_key``): preflight, plan, apply, verify,
    summary. Each prints plainly and returns a table."""

    #: The action's word in messages (``decide``'s "To <verb>, run again...").
    verb = "apply"

    def __init__(
        self,
        engine: Any,
        *,
        action: str,
        parameters: dict[str, Any] | None = None,
        plan_id: str = "",
        dry_run: bool = True,
        confirm: str = "",
        actor: Actor | None = None,
        say: Say = print,
    ) -> None:
        super().__init__(engine, dry_run=dry_run, confirm=confirm, say=say)
        self.action = action
        self.parameters = dict(parameters or {})
        self.plan_id = plan_id
        self.actor = actor or plan_step_actor(None, None)
        self.run_schedule: int | None = None
        self.preflight_checks: Checks | None = None
        self.step = PlanStep()

    @classmethod
    def open(
        cls,
        *,
        action: str,
        parameters: dict[str, Any] | None = None,
        data_dir: str | Path | None = None,
        plan_id: str | None = "",
        dry_run: bool = True,
        confirm: str | None = "",
        run_actor: str | None = None,
        run_scope: str | None = None,
        run_schedule: int | None = None,
        say: Say = print,
    ) -> PlannedRunbook:
        """Check the parameters and open the engine; a bad parameter stops the runbook with its message."""
        from jamey_engine.plans.actions import get_action

        runbook = cls(None, action=action, say=say)

        def setup() -> None:
            chosen = get_action(action)
            runbook.plan_id = str(plan_id or "").strip()
            runbook.actor = plan_step_actor(run_actor, run_scope)
            runbook.run_schedule = int(run_schedule) if run_schedule is not None else None
            given = {name: value for name, value in (parameters or {}).items() if value not in (None, "")}
            # An applying run takes the stored plan's parameters; the notebook's are checked only to plan.
            runbook.parameters = given if runbook.plan_id else chosen.check(given)
            mode = runbook._open_engine(data_dir, dry_run, confirm)
            which = f"plan {runbook.plan_id}" if runbook.plan_id else "a new plan"
            say(f"{chosen.description} ({action}, {which}) in {runbook._engine.settings.data_dir}: {mode}.")

        runbook._step("parameters", setup)
        return runbook

    # -- steps ---------------------------------------------------------------------------------
    def preflight(self) -> pd.DataFrame | None:
        """Run the action's preflight on the parameters (the stored plan's when ``plan_id`` is
        set); any failure stops the runbook."""
        from jamey_engine.plans import store
        from jamey_engine.plans.actions import get_action

        def body() -> pd.DataFrame | None:
            params = dict(self.parameters)
            if self.plan_id:
                params = dict(store.get(self._engine.db, self.plan_id).parameters)
            checks = get_action(self.action).preflight(self._engine, params)
            self.preflight_checks = checks
            if checks is None:
                self.say("Preflight: nothing to check for this action.")
                return None
            if not checks.ok:
                self.say("Preflight failed.")
                failed = "; ".join(f"{c.name}: {c.detail}" for c in checks.failures)
                raise Conflict(f"preflight failed ({failed}); nothing was changed")
            self.say("Preflight passed.")
            return checks.to_frame()

        return self._step("preflight", body)

    def plan(self) -> pd.DataFrame | None:
        """Create the plan (or load ``plan_id``) and show what it would change and its phrase."""

        def body() -> pd.DataFrame:
            record = make_plan(self._engine, self.action, self.parameters, self.actor, self.plan_id)
            self.step.record = record
            self.say(f"Plan {record.id} ({record.status}), planned by {record.planned_by}.")
            if self.nothing_to_do(record) is None:
                if record.status == "pending_approval":
                    self.say(approval_message(record))
                elif self.action in SECRET_ACTIONS:
                    self.say(secret_message(record).replace("Not applied here: t", "T"))
                else:
                    self.say(apply_hint(record))
            else:
                self.say("Nothing to do.")
            return summary_frame(record.summary)

        return self._step("plan", body)

    def nothing_to_do(self, record: PlanRecord) -> str | None:
        """Why applying ``record`` would change nothing (None: it would change something)."""
        total = record.summary.get("total_to_delete")
        if total == 0 and self.action == "retention":
            return "no layer's retention policy deletes anything now."
        return None

    def apply(self) -> pd.DataFrame | None:
        """Apply the plan when confirmed (and approved where required); otherwise say why not."""

        def body() -> pd.DataFrame | None:
            record = self.step.record
            if record is None:
                raise Conflict("there is no plan; run the plan step first")
            confirm = scheduled_confirm(
                record, self.run_schedule, self.dry_run, self.confirm, self.say, self.plan_id
            )
            decision, outcome = decide_plan(
                record,
                action=self.verb,
                dry_run=self.dry_run,
                confirm=confirm,
                nothing_to_do=self.nothing_to_do(record),
            )
            if outcome == "applied" and self.action in SECRET_ACTIONS:
                decision, outcome = Decision("refused", secret_message(record)), "refused"
            self.step.outcome = outcome
            self.say(decision.message)
            if not decision.go or outcome != "applied":
                return None
            result = apply_plan(self._engine, record, confirm, self.actor, self.say)
            self.step.result = result
            self.step.record = result.plan
            if result.backup_id:
                self.say(f"Backup: {result.backup_id}.")
            self.say(f"Applied plan {record.id} in {result.duration_seconds:.1f}s.")
            return pd.DataFrame(
                [{"result": name, "value": str(value)} for name, value in result.result.items()],
                columns=["result", "value"],
            )

        return self._step("apply", body)

    def verify(self) -> pd.DataFrame | None:
        """The apply's verification (the contract's verify step); a failed check stops the runbook."""

        def body() -> pd.DataFrame | None:
            result = self.step.result
            if result is None:
                self.say("Verified: nothing changed (no plan was applied).")
                return None
            checks = pd.DataFrame(
                [
                    {"check": c["name"], "result": "ok" if c["ok"] else "FAILED", "detail": c["detail"]}
                    for c in result.verification
                ],
                columns=["check", "result", "detail"],
            )
            if not result.verified:
                failed = "; ".join(f"{c['name']}: {c['detail']}" for c in result.verification if not c["ok"])
                raise Conflict(f"verification failed: {failed}")
            self.say("Verified.")
            return checks

        return self._step("verify", body)

    def summary(self) -> dict[str, Any]:
        """One closing line, and the facts of the run (the record papermill leaves behind):
        ``plan_id``, ``confirm_phrase``, ``plan_status``, ``requires_approval``, ``outcome``,
        ``backup``, ``result``, ``verified``, ``error``."""
        record, result = fresh_record(self.engine, self.step.record), self.step.result
        facts: dict[str, Any] = {
            "action": self.action,
            "parameters": self.parameters if not record else record.parameters,
            "dry_run": self.dry_run,
            "plan_id": record.id if record else None,
            "confirm_phrase": record.confirm_phrase if record else None,
            "plan_status": record.status if record else None,
            "requires_approval": record.requires_approval if record else None,
            "outcome": self.step.outcome,
            "schedule": self.run_schedule,
            "backup": result.backup_id if result else None,
            "result": result.result if result else None,
            "verified": result.verified if result else None,
            "error": self.error,
        }
        if self.error:
            self.say(f"Summary: stopped at {self.stopped_at}: {self.error}")
        elif result is not None:
            self.say(f"Summary: plan {result.plan.id} applied and verified.")
        elif record is not None:
            self.say(f"Summary: plan {record.id} is {record.status}; {self.step.outcome or 'not applied'}.")
        return facts
