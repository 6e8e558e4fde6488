"""Planning: run an action's preflight, compute exactly what it would change, store the plan."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from jamey_engine.durations import utcnow
from jamey_engine.plans import store
from jamey_engine.plans.actions import Action, Preview, get_action
from jamey_engine.plans.actors import Actor
from jamey_engine.preflight.checks import Checks

if TYPE_CHECKING:
    from jamey_engine.engine import Engine


def digest_of(action: str, parameters: dict[str, Any], preview: Preview) -> str:
    """The SHA-256 of what a plan will change: the action, its parameters and the state it saw."""
    material = {"action": action, "parameters": parameters, "state": preview.state}
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


def checks_as_list(checks: Checks | None) -> list[dict[str, Any]]:
    """A preflight or verification as JSON rows (name, ok, detail)."""
    if checks is None:
        return []
    return [{"name": check.name, "ok": check.ok, "detail": check.detail} for check in checks.checks]


def preview_action(engine: Engine, action: Action, params: dict[str, Any]) -> tuple[Preview, Checks | None]:
    """The action's preflight and preview on ``params`` (which the preview may complete)."""
    return action.preflight_and_preview(engine, params)


def plan(engine: Engine, action: str, parameters: dict[str, Any] | None, actor: Actor) -> store.PlanRecord:
    """Plan ``action`` with ``parameters`` on behalf of ``actor``; change nothing but the plans table.

    Runs the preflight, computes what would change (the summary), its digest and the confirm
    phrase, and stores the plan: ``pending_approval`` when JAMEY_APPROVALS names the action,
    else ``planned``; it expires after JAMEY_PLAN_TTL. Raises InvalidInput (unknown action or
    parameter, bad value), Forbidden (the actor lacks the action's scope), NotFound, Conflict
    (e.g. a key already revoked), or the engine's errors from the preview.
    """
    chosen = get_action(action)
    params = chosen.check(parameters)
    actor.require(chosen.scope)
    preview, checks = preview_action(engine, chosen, params)
    summary = {**preview.summary, "preflight": checks_as_list(checks), "backup_first": chosen.backup_first}
    now = utcnow()
    requires = chosen.name in engine.settings.approvals
    row = {
        "id": store.new_plan_id(now),
        "action": chosen.name,
        "parameters": json.dumps(params, sort_keys=True),
        "status": "pending_approval" if requires else "planned",
        "summary": json.dumps(summary, sort_keys=True, default=str),
        "digest": digest_of(chosen.name, params, preview),
        "confirm_phrase": preview.phrase,
        "requires_approval": requires,
        "planned_by": actor.name[:100],
        "planned_by_key": actor.key_id,
        "created_at": now,
        "expires_at": now + engine.settings.plan_ttl,
    }
    return store.insert(engine.db, row)
