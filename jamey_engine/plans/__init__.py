"""One contract for every change: plan, approve, apply, verify, record, the same from every door.

* ``actions``: the registry (``prune``, ``dedupe``, ``retention``, ``restore``, ``backup-delete``,
  ``key-revoke``, ``key-rotate``), each with its parameters, scope, backup-first and preflight;
* ``planning.plan``: store what an action would change, its digest and confirm phrase;
* ``approvals.approve``/``reject``: a second key's decision, when JAMEY_APPROVALS asks for it;
* ``applying.apply``: the one way a plan changes data;
* ``store``: the plans table and its audit trail.

The names below are imported on first use, so ``jamey_engine.config`` can read ``names``
without pulling in the engine.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "Actor": "jamey_engine.plans.actors",
    "ApplyResult": "jamey_engine.plans.applying",
    "PlanRecord": "jamey_engine.plans.store",
    "apply": "jamey_engine.plans.applying",
    "approve": "jamey_engine.plans.approvals",
    "reject": "jamey_engine.plans.approvals",
    "plan": "jamey_engine.plans.planning",
    "get_plan": "jamey_engine.plans.store",
    "list_plans": "jamey_engine.plans.store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    import importlib

    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    attr = "get" if name == "get_plan" else name
    return getattr(importlib.import_module(module), attr)
