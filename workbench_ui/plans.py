"""The one plan component of the workbench: every data-changing action of the Memory, Backups,
Keys and Runbooks pages is planned, shown, approved (when JAMEY_APPROVALS asks) and applied
here, through the engine's contract (``jamey_engine.plans``), so each door shows the same plan.

A page calls :func:`create` when the user asks for a change (the plan is stored, nothing else
changes) and :func:`panel` on every run: it shows the plan (one diff table per action, the same
everywhere), its approval state, the confirm phrase to type, the progress of the apply
(``st.progress``) and its result. The Approvals page shows the same :func:`detail`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

import workbench_ui as ui
from jamey_engine.plans import recovery
from jamey_engine.plans.actions import get_action
from jamey_engine.plans.actors import Actor
from jamey_engine.plans.store import PlanRecord

_PLAN = "plan_id_{slot}"  # the plan a page's slot shows
_RESULT = "plan_result_{slot}"  # the last apply's result (as_dict) of a slot
# The list-valued parts of a summary, as one table each, in the order people read them.
_TABLE_TITLES = {
    "layers": "Memory layers",
    "tables": "Database tables",
    "keys": "Keys",
    "kept_stopped": "Keys kept revoked or rotated",
    "would_reenable": "Keys the restore would re-enable",
    "removed": "Keys removed",
    "backups": "Backups",
    "preflight": "Preflight checks",
}
_SKIPPED = {"preflight", "backup_first"}


def acting(scope: str) -> Actor:
    """The signed-in key as the contract's actor, checked again (and charged to its rate limit)
    for ``scope``; see :func:`workbench_ui.authorize`."""
    name = ui.authorize(scope)
    session = ui.current_session()
    assert session is not None  # authorize reruns to the sign-in page otherwise
    return Actor(name, tuple(session.scopes), session.key_id)


def create(slot: str, action: str, parameters: dict[str, Any]) -> PlanRecord:
    """Plan ``action`` with ``parameters`` as the signed-in key and show it in ``slot`` (the
    page's :func:`panel`). Raises the contract's errors (bad parameter, Forbidden, Conflict)."""
    from jamey_engine.plans.planning import plan

    actor = acting(get_action(action).scope)
    record = plan(ui.engine(), action, parameters, actor)
    st.session_state[_PLAN.format(slot=slot)] = record.id
    st.session_state.pop(_RESULT.format(slot=slot), None)
    return record


def forget(slot: str) -> None:
    """Stop showing ``slot``'s plan and result."""
    st.session_state.pop(_PLAN.format(slot=slot), None)
    st.session_state.pop(_RESULT.format(slot=slot), None)


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def diff_tables(record: PlanRecord) -> list[tuple[str, pd.DataFrame]]:
    """The plan's summary as tables: one per list of rows (layers, tables, keys...), nested
    lists of a dict flattened in, and one ``what / value`` table for the single values."""
    tables: list[tuple[str, pd.DataFrame]] = []
    single: list[dict[str, Any]] = []

    def add(name: str, value: Any) -> None:
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            rows = [{key: _cell(item_value) for key, item_value in item.items()} for item in value]
            tables.append((_TABLE_TITLES.get(name, name.replace("_", " ").capitalize()), pd.DataFrame(rows)))
        elif isinstance(value, dict) and name in _TABLE_TITLES:
            for inner, inner_value in value.items():
                add(inner, inner_value)
        elif not (isinstance(value, list) and not value):
            single.append({"what": name.replace("_", " "), "value": str(_cell(value))})

    for name, value in record.summary.items():
        if name not in _SKIPPED:
            add(name, value)
    if single:
        tables.insert(0, ("Plan", pd.DataFrame(single)))
    return tables


def detail(record: PlanRecord) -> None:
    """The plan in full: what, who, status, approval, every diff table, the preflight checks."""
    st.markdown(
        f"**Plan {record.id}**: `{record.action}` {json.dumps(record.parameters, sort_keys=True)}  \n"
        f"status **{record.status}**, planned by **{record.planned_by}**, "
        f"expires {record.expires_at:%Y-%m-%d %H:%M:%S} UTC"
        + (", a backup is taken first" if record.summary.get("backup_first") else "")
    )
    approval = record.as_dict()["approval"]
    if approval["status"] == "pending":
        st.info(f"Waiting for approval by a second key with the {get_action(record.action).scope} scope.")
    elif approval["status"] in ("approved", "rejected"):
        note = st.success if approval["status"] == "approved" else st.error
        note(f"{approval['status'].capitalize()} by {approval['by']}: {approval['comment']}")
    for title, frame in diff_tables(record):
        st.caption(title)
        st.dataframe(frame, hide_index=True, width="stretch")
    checks = record.summary.get("preflight") or []
    if checks:
        st.caption("Preflight checks")
        st.dataframe(pd.DataFrame(checks), hide_index=True, width="stretch")
    if record.error:
        st.error(record.error)


def _show_result(result: dict[str, Any]) -> None:
    text = f"Plan {result['plan_id']} {result['status']} ({result['action']}, {result['duration_seconds']}s)"
    if result.get("backup_id"):
        text += f"; backup taken first: {result['backup_id']}"
    (st.success if result["status"] == "applied" and result.get("verified", True) else st.warning)(text)
    if result.get("verification"):
        st.dataframe(pd.DataFrame(result["verification"]), hide_index=True, width="stretch")


def panel(
    slot: str, *, title: str = "Plan", on_applied: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any] | None:
    """Show ``slot``'s plan, and apply it once its phrase is typed; the last apply's result
    (``ApplyResult.as_dict()``). ``on_applied`` sees the result once, right after the apply, with
    the ``key`` of a rotation, which is never kept in the session beyond that."""
    from jamey_engine.plans.applying import apply

    result: dict[str, Any] | None = st.session_state.get(_RESULT.format(slot=slot))
    if result is not None:
        _show_result(result)
    plan_id = st.session_state.get(_PLAN.format(slot=slot))
    if not plan_id:
        return result
    with ui.shown_errors(title):
        record = recovery.get(ui.engine(), plan_id)
        st.subheader(title)
        detail(record)
        if record.status not in ("planned", "approved"):
            if record.status == "pending_approval":
                st.caption("It can be applied here once approved (a second person: the Approvals page).")
            if st.button("Dismiss", key=f"plan_dismiss_{slot}"):
                forget(slot)
                st.rerun()
            ui.stop_section()
        with st.form(f"plan_apply_{slot}"):
            typed = st.text_input(f"Type **{record.confirm_phrase}** to apply", key=f"plan_phrase_{slot}")
            c1, c2 = st.columns(2)
            go = c1.form_submit_button("Apply", type="primary")
            drop = c2.form_submit_button("Discard the plan")
        if drop:
            forget(slot)
            st.rerun()
        if go:
            actor = acting(get_action(record.action).scope)
            done = apply(ui.engine(), record.id, typed, actor, ui.progress_bar(f"Applying {record.action}…"))
            body = done.as_dict()
            if on_applied is not None:
                on_applied(body)
            body.pop("key", None)  # a new key's plaintext: shown once by on_applied, never kept
            st.session_state[_RESULT.format(slot=slot)] = body
            st.session_state.pop(_PLAN.format(slot=slot), None)
            st.rerun()
    return result


def waiting_for(actor_name: str, key_id: str | None, scopes: tuple[str, ...]) -> list[PlanRecord]:
    """Plans pending approval that this key may decide: planned by another key (another id and
    another name) and of an action whose scope the key holds (the contract's own rule)."""
    from jamey_engine.keys.scopes import has_scope

    return [
        record
        for record in recovery.list_plans(ui.engine(), status="pending_approval")
        if record.planned_by != actor_name
        and (record.planned_by_key is None or record.planned_by_key != key_id)
        and has_scope(scopes, get_action(record.action).scope)
    ]
