"""Approvals: a second person (another key, by id and by name, with the action's scope) approves
or rejects a plan that JAMEY_APPROVALS holds, with a comment. Every attempt is in the audit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jamey_engine.durations import utcnow
from jamey_engine.errors import Conflict, Forbidden, InvalidInput, JameyError
from jamey_engine.plans import store
from jamey_engine.plans.actions import get_action
from jamey_engine.plans.actors import Actor
from jamey_engine.text import WHITESPACE, is_blank

if TYPE_CHECKING:
    from jamey_engine.engine import Engine

COMMENT_MAX = 2000


def _check_decider(plan: store.PlanRecord, actor: Actor, verb: str) -> None:
    if actor.key_id is None:
        raise Forbidden(
            f"plan {plan.id} can only be {verb} with a key (the CLI's own actor {actor.name!r} cannot): "
            f"use --key-file PATH with the second person's key, the workbench or the API"
        )
    actor.require(get_action(plan.action).scope)
    if actor.key_id == plan.planned_by_key or actor.name == plan.planned_by:
        raise Forbidden(
            f"plan {plan.id} was planned by {plan.planned_by!r}; it must be {verb} by another key "
            "(another id and another name)"
        )
    if plan.status == "expired":
        raise Conflict(f"plan {plan.id} expired at {plan.expires_at.isoformat()}; plan again")
    if plan.status != "pending_approval":
        raise Conflict(f"plan {plan.id} is {plan.status}; only a plan pending approval can be {verb}")


def _decide(engine: Engine, plan_id: str, actor: Actor, comment: str, approve: bool) -> store.PlanRecord:
    verb = "approved" if approve else "rejected"
    raw = str(comment or "")
    if is_blank(raw):
        raise InvalidInput(f"comment is required: say why the plan is {verb}")
    # Runs of white space become one space; a comment of other characters is kept as given.
    text = " ".join(raw.split()) or raw.strip(WHITESPACE)
    if len(text) > COMMENT_MAX:
        raise InvalidInput(f"comment is {len(text)} characters; at most {COMMENT_MAX}")
    plan = store.get(engine.db, plan_id)
    try:
        _check_decider(plan, actor, verb)
    except JameyError as err:
        store.record_event(
            engine.db, plan.id, f"{verb[:-1]}_refused"[:32], actor.name, actor.key_id, err.message
        )
        raise
    moved = store.transition(
        engine.db,
        plan.id,
        ("pending_approval",),
        "approved" if approve else "rejected",
        event=(verb, actor.name, actor.key_id, text),
        decided_by=actor.name[:100],
        decided_by_key=actor.key_id,
        decided_at=utcnow(),
        decision_comment=text,
    )
    if not moved:  # expired or decided by someone else meanwhile
        fresh = store.get(engine.db, plan.id)
        raise Conflict(f"plan {plan.id} is {fresh.status} now; it cannot be {verb}")
    decided = store.get(engine.db, plan.id)
    engine.events.publish(
        f"plan_{verb}",
        {
            "plan_id": decided.id,
            "action": decided.action,
            "planned_by": decided.planned_by,
            "decided_by": actor.name,
            "comment": text,
        },
    )
    return decided


def approve(engine: Engine, plan_id: str, actor: Actor, comment: str) -> store.PlanRecord:
    """Approve plan ``plan_id`` as ``actor`` with ``comment``; publishes a ``plan_approved`` event.

    Raises InvalidInput (no comment), NotFound, Forbidden (the CLI's own actor, the planner's own
    key or name, a key without the action's scope), Conflict (expired, not pending approval).
    """
    return _decide(engine, plan_id, actor, comment, True)


def reject(engine: Engine, plan_id: str, actor: Actor, comment: str) -> store.PlanRecord:
    """Reject plan ``plan_id`` as ``actor`` with ``comment`` (same rules as :func:`approve`)."""
    return _decide(engine, plan_id, actor, comment, False)
