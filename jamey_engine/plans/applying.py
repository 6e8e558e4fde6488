"""Apply: the one way a plan changes data.

In order: the actor's scope, the plan's status (approved where approval is required, not
expired, not applied), the confirm phrase; the plan is claimed (``applying``, one winner across
processes); the digest is computed again against the state found now (a mismatch: ``stale``,
"plan again"); the preflight again; a backup first where the action says so; the change; a
verify step; one operation-log record naming the plan, the planner, the approver and the applier.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jamey_engine import oplog
from jamey_engine.durations import utcnow
from jamey_engine.errors import Conflict, JameyError, PhraseMismatch
from jamey_engine.fsutil import process_identity
from jamey_engine.plans import recovery, store
from jamey_engine.plans.actions import Change, get_action
from jamey_engine.plans.actors import Actor
from jamey_engine.plans.planning import checks_as_list, digest_of, preview_action
from jamey_engine.preflight.checks import confirmation_matches, normalize_phrase
from jamey_engine.progress import Progress

if TYPE_CHECKING:
    from jamey_engine.engine import Engine

log = logging.getLogger(__name__)
PROGRESS_EVERY = 0.5  # seconds between progress writes to the plan's row


@dataclass(frozen=True)
class ApplyResult:
    """What an apply did; ``as_dict()`` is what every door prints. ``secret`` (a rotated key's
    new plaintext) is shown once by the door that applied and never stored."""

    plan: store.PlanRecord
    backup_id: str | None
    result: dict[str, Any]
    preflight: list[dict[str, Any]]
    verification: list[dict[str, Any]]
    duration_seconds: float
    secret: str | None = field(default=None, repr=False)
    native: Any = field(default=None, repr=False, compare=False)  # the engine's own outcome

    @property
    def verified(self) -> bool:
        return all(check["ok"] for check in self.verification)

    def as_dict(self) -> dict[str, Any]:
        body = {
            "plan_id": self.plan.id,
            "action": self.plan.action,
            "status": self.plan.status,
            "planned_by": self.plan.planned_by,
            "approved_by": self.plan.decided_by if self.plan.requires_approval else None,
            "applied_by": self.plan.applied_by,
            "backup_id": self.backup_id,
            "result": self.result,
            "preflight": self.preflight,
            "verification": self.verification,
            "verified": self.verified,
            "duration_seconds": round(self.duration_seconds, 3),
        }
        if self.secret is not None:
            body["key"] = self.secret
        return body


def claim(engine: Engine, plan_id: str, confirm: object, actor: Actor) -> store.PlanRecord:
    """Check that ``actor`` may apply plan ``plan_id`` now with ``confirm`` and mark it ``applying``.

    Raises NotFound, Forbidden (scope), Conflict (needs approval, rejected, expired, already
    applied or applying), InvalidInput (the phrase does not match). Changes nothing on refusal
    but the audit trail.
    """
    plan = recovery.get(engine, plan_id)
    action = get_action(plan.action)
    try:
        actor.require(action.scope)
        _check_status(plan)
        if not confirmation_matches(plan.confirm_phrase, confirm):
            given = normalize_phrase(confirm) if confirm is not None else ""
            raise PhraseMismatch(
                f"confirm {given!r} does not match plan {plan.id}; type exactly {plan.confirm_phrase!r}"
            )
    except JameyError as err:
        store.record_event(engine.db, plan.id, "apply_refused", actor.name, actor.key_id, err.message)
        raise
    ready = ("approved",) if plan.requires_approval else ("planned",)
    moved = store.transition(
        engine.db,
        plan.id,
        ready,
        "applying",
        event=("applying", actor.name, actor.key_id, None),
        applied_by=actor.name[:100],
        started_at=utcnow(),
        progress="starting",
        **recovery.applier_values(os.getpid(), process_identity(os.getpid())),
    )
    if not moved:
        fresh = store.get(engine.db, plan.id)
        raise Conflict(f"plan {plan.id} is {fresh.status} now; it cannot be applied")
    return store.get(engine.db, plan.id)


def _check_status(plan: store.PlanRecord) -> None:
    if plan.status == "pending_approval":
        raise Conflict(
            f"plan {plan.id} needs approval by a second key first: "
            f"jamey plans approve {plan.id} --comment TEXT --key-file PATH"
        )
    if plan.status in ("expired", "stale"):
        raise Conflict(f"plan {plan.id} is {plan.status}; plan again")
    if plan.status not in ("planned", "approved"):
        raise Conflict(f"plan {plan.id} is {plan.status}; it cannot be applied")


def _progress_writer(engine: Engine, plan_id: str, outer: Progress | None) -> Progress:
    last = [0.0]

    def report(done: int, total: int, stage: str) -> None:
        if outer is not None:
            outer(done, total, stage)
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY:
            last[0] = now
            text = f"{stage} ({done}/{total})" if total else stage
            try:
                store.set_progress(engine.db, plan_id, text)
            except JameyError:
                log.warning("could not record the progress of plan %s", plan_id, exc_info=True)

    return report


def run_claimed(
    engine: Engine, plan: store.PlanRecord, actor: Actor, progress: Progress | None = None
) -> ApplyResult:
    """Apply a plan :func:`claim` marked ``applying`` (see the module docstring).

    Raises Conflict when the plan is stale (marked ``stale``), and the engine's errors from the
    preflight, backup, change or verify steps (the plan is marked ``failed`` with the message).
    """
    action = get_action(plan.action)
    params = dict(plan.parameters)
    report = _progress_writer(engine, plan.id, progress)
    started = time.monotonic()
    who = f"planned by {plan.planned_by}, approved by {plan.decided_by or '-'}, applied by {actor.name}"
    try:
        report(0, 0, "checking the plan against now")
        preview, checks = preview_action(engine, action, params)
        if digest_of(action.name, params, preview) != plan.digest:
            message = (
                f"plan {plan.id} is stale: what it would change has changed since it was planned "
                f"(it now says {preview.phrase!r}); plan again"
            )
            store.transition(
                engine.db,
                plan.id,
                ("applying",),
                "stale",
                event=("stale", actor.name, actor.key_id, message),
                finished_at=utcnow(),
                error=message,
                progress=None,
            )
            raise Conflict(message)
        if checks is not None and not checks.ok:
            failed = "; ".join(f"{c.name}: {c.detail}" for c in checks.failures)
            raise Conflict(f"preflight failed: {failed}")
        backup_id = None
        if action.backup_first and action.name != "restore":  # a restore takes its own safety backup
            report(0, 0, "taking a backup first")
            backup_id = engine.vault.create(
                report, label=f"before plan {plan.id} ({plan.action})", actor=actor.name
            ).id
        report(0, 0, "applying")
        change: Change = action.change(engine, params, preview, actor.name, report)
        backup_id = backup_id or change.backup_id
        report(0, 0, "verifying")
        verification = checks_as_list(action.verify(engine, params, preview, change))
    except BaseException as err:
        message = err.message if isinstance(err, JameyError) else f"{type(err).__name__}: {err}"
        if store.transition(
            engine.db,
            plan.id,
            ("applying",),
            "failed",
            event=("failed", actor.name, actor.key_id, message),
            finished_at=utcnow(),
            error=message,
            progress=None,
        ):
            oplog.record(
                engine.db,
                engine.events,
                "plan",
                "failure",
                time.monotonic() - started,
                detail=f"plan {plan.id} {plan.action}: {who}: {message}",
                actor=actor.name,
            )
        raise
    duration = time.monotonic() - started
    verified = all(check["ok"] for check in verification)
    status = "applied" if verified else "failed"
    error = (
        None
        if verified
        else "verification failed: "
        + "; ".join(f"{c['name']}: {c['detail']}" for c in verification if not c["ok"])
    )
    body = {
        **change.result,
        "backup_id": backup_id,
        "preflight": checks_as_list(checks),
        "verification": verification,
    }
    # The record first: a reader that sees the plan applied finds its record too.
    oplog.record(
        engine.db,
        engine.events,
        "plan",
        "success" if verified else "failure",
        duration,
        detail=f"plan {plan.id} {plan.action}: {who}" + (f": {error}" if error else ""),
        actor=actor.name,
    )
    store.transition(
        engine.db,
        plan.id,
        ("applying",),
        status,
        event=(status, actor.name, actor.key_id, error),
        finished_at=utcnow(),
        result=json.dumps(body, sort_keys=True, default=str),
        error=error,
        progress=None,
    )
    final = store.get(engine.db, plan.id)
    return ApplyResult(
        final,
        backup_id,
        change.result,
        checks_as_list(checks),
        verification,
        duration,
        change.secret,
        change.native,
    )


def apply(
    engine: Engine, plan_id: str, confirm: object, actor: Actor, progress: Progress | None = None
) -> ApplyResult:
    """Apply plan ``plan_id`` when ``confirm`` is its phrase, on behalf of ``actor``.

    See :func:`claim` and :func:`run_claimed` for the checks and errors.
    """
    plan = claim(engine, plan_id, confirm, actor)
    return run_claimed(engine, plan, actor, progress)


def plan_and_apply(
    engine: Engine, action: str, parameters: dict[str, Any], actor: Actor, progress: Progress | None = None
) -> ApplyResult:
    """Plan ``action`` and apply it at once with its own phrase (a door whose user already
    confirmed, such as an HTTP endpoint that names the change). Raises Conflict naming the plan
    and how to approve it when JAMEY_APPROVALS holds the action, and every error of
    :func:`~jamey_engine.plans.planning.plan` and :func:`apply`.
    """
    from jamey_engine.plans.planning import plan

    record = plan(engine, action, parameters, actor)
    if record.status == "pending_approval":
        raise Conflict(
            f"plan {record.id} needs approval by a second key; nothing changed. Approve it with "
            f"POST /admin/plans/{record.id}/approve or jamey plans approve {record.id} --comment TEXT --key-file PATH"
        )
    return apply(engine, record.id, record.confirm_phrase, actor, progress)
