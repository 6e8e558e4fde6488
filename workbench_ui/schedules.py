"""The Schedules section of the Runbooks page: the runbook schedules the service runs, a form to
add one (its next five run times shown before saving) and pause, resume and remove.

Reading needs ``ops:read``; every change needs ``ops:write`` and is checked again on click.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

import workbench_ui as ui
from jamey_engine.durations import utcnow
from jamey_engine.errors import InvalidInput
from jamey_engine.runbooks import schedules

if TYPE_CHECKING:
    from jamey_engine.engine import Engine
    from jamey_engine.runbooks.catalog import Runbook


def _parameters(text: str) -> dict[str, Any]:
    """The parameters field: a JSON object (empty: the notebook's defaults)."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidInput(f"parameters {text!r} are not a JSON object: {err.msg}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f'parameters {text!r} must be a JSON object such as {{"days": 7}}')
    return value


def _table(found: list[schedules.Schedule]) -> None:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "id": s.id,
                    "runbook": s.runbook,
                    "cron": s.cron,
                    "timezone": s.timezone,
                    "parameters": json.dumps(s.parameters, sort_keys=True),
                    "next run (UTC)": s.next_run_at,
                    "last run": s.last_run_id or "",
                    "last status": s.last_status or "",
                    "paused": s.paused,
                }
                for s in found
            ]
        ),
        hide_index=True,
        width="stretch",
        key="sc_table",
    )


def _actions(engine: Engine, found: list[schedules.Schedule]) -> None:
    by_id = {s.id: s for s in found}
    chosen = st.selectbox(
        "Schedule",
        list(by_id),
        key="sc_pick",
        format_func=lambda i: (
            f"{i} · {by_id[i].runbook} · {by_id[i].cron} ({'paused' if by_id[i].paused else 'active'})"
        ),
    )
    c1, c2, c3 = st.columns(3)
    if c1.button("Pause", key="sc_pause", disabled=by_id[chosen].paused):
        ui.authorize("ops:write")
        schedules.pause_schedule(engine.db, chosen)
        st.rerun()
    if c2.button("Resume", key="sc_resume", disabled=not by_id[chosen].paused):
        ui.authorize("ops:write")
        schedules.resume_schedule(engine.db, chosen)
        st.rerun()
    if c3.button("Remove", key="sc_remove"):
        ui.authorize("ops:write")
        schedules.remove_schedule(engine.db, chosen)
        st.rerun()


def _add(engine: Engine, catalog: dict[str, Runbook]) -> None:
    st.markdown("**Add a schedule**")
    names = list(catalog)
    runbook = st.selectbox("Runbook", names, key="sc_runbook")
    c1, c2 = st.columns(2)
    cron = c1.text_input("Cron (minute hour day month weekday)", value="0 6 * * *", key="sc_cron")
    timezone = c2.text_input("Time zone", value="UTC", key="sc_timezone")
    given = st.text_input(
        "Parameters (JSON)",
        value='{"dry_run": true}' if catalog[runbook].parameter("dry_run") is not None else "{}",
        key="sc_parameters",
        help="dry_run false: each run plans its change and applies it when no approval is required"
        " (a plan waiting for approval shows as pending_approval).",
    )
    try:
        upcoming = schedules.next_run_times(cron, timezone, utcnow())
    except InvalidInput as err:
        st.error(str(err))
        return
    st.caption("Next five runs: " + ", ".join(f"{at:%a %Y-%m-%d %H:%M} UTC" for at in upcoming))
    if st.button("Add schedule", type="primary", key="sc_add"):
        actor = ui.authorize("ops:write")
        added = schedules.add_schedule(
            engine, runbook, cron, timezone=timezone, parameters=_parameters(given), created_by=actor
        )
        st.toast(f"Schedule {added.id} added: {added.runbook} on {added.cron}")
        st.rerun()


def show_schedules(engine: Engine, catalog: dict[str, Runbook]) -> None:
    """The section: the schedules, and (with ``ops:write``) add, pause, resume and remove."""
    st.subheader("Schedules")
    with ui.shown_errors("Reading the schedules"):
        found = schedules.list_schedules(engine.db)
        if found:
            _table(found)
        else:
            st.info("No schedule yet.")
        if ui.can("ops:write"):
            if found:
                with ui.shown_errors("Changing the schedule"):
                    _actions(engine, found)
            if catalog:
                with ui.shown_errors("Adding the schedule"):
                    _add(engine, catalog)
