"""Runbooks: run a notebook runbook (a dry run first, then Apply with the confirm phrase typed by
hand), follow it cell by cell, cancel it, and open any past run with its outputs and files.

``?runbook=NAME&<parameter>=<value>`` chooses a runbook and fills its form: the link an alert's
``runbook_url`` and the Alerts page's "Run runbook" give (``jamey_engine.runbooks.links``).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pandas as pd
import streamlit as st

import workbench_ui as ui
from jamey_engine.errors import InvalidInput
from jamey_engine.keys.scopes import MEMORY_CONTENT
from jamey_engine.plans import recovery as plan_recovery
from jamey_engine.preflight.checks import confirmation_matches
from jamey_engine.runbooks import artifacts, launch, runs
from jamey_engine.runbooks.catalog import Parameter, Runbook
from workbench_ui import plans, untrusted
from workbench_ui.notebook_view import show_notebook
from workbench_ui.schedules import show_schedules

CURRENT = "runbooks_current"  # id of the run this tab follows
PLAN = "runbooks_plan"  # (runbook, parameters, run id) of the last successful dry run
STEPS = "runbooks_steps"  # {run id: [cell lines seen]}
FLOW = ("dry_run", "confirm", "plan_id")  # parameters the flow sets, not the form

viewer = ui.require_page("runbooks")
st.title("Runbooks")
engine = ui.engine()
query = st.query_params


def _parameter_widget(runbook: Runbook, parameter: Parameter, given: str | None) -> Any:
    key = f"rb_{runbook.name}_{parameter.name}"
    label, help_text = parameter.name, parameter.help or None
    if parameter.type == "bool":
        value = parameter.default if given is None else given.strip().lower() in ("true", "1", "yes", "on")
        return st.checkbox(label, value=bool(value), help=help_text, key=key)
    if parameter.type in ("int", "float"):
        cast = int if parameter.type == "int" else float
        try:
            value = cast(given) if given is not None else parameter.default
        except ValueError:
            value = parameter.default
        return st.number_input(label, value=value, help=help_text, key=key)
    known = launch.known_values(engine, parameter.name)
    value = given if given is not None else ("" if parameter.default is None else str(parameter.default))
    if known is not None:
        options = known if value in known else [value, *known]
        return st.selectbox(
            label,
            options,
            index=options.index(value),
            help=help_text,
            key=key,
            format_func=lambda v: v or "(default)",
        )
    return st.text_input(label, value=value, help=help_text, key=key)


def _start(runbook: Runbook, values: dict[str, Any]) -> None:
    actor = ui.authorize("ops:write")
    session = ui.current_session()
    scopes = session.scopes if session is not None else ()
    record = launch.start_run(engine, runbook.name, values, actor=actor, scopes=scopes)
    st.session_state[CURRENT] = record.id
    st.session_state["rb_open"] = record.id  # the run view follows the new run


def _duration(run: runs.RunRecord) -> str:
    seconds = run.duration_seconds
    return "" if seconds is None else f"{seconds:.1f}s"


# --- catalog and form ------------------------------------------------------------------------
catalog: dict[str, Runbook] = {}
with ui.shown_errors("Reading the runbooks"):
    catalog = launch.catalog(engine)
    if not catalog:
        st.info("No runbook found: a runbook is a notebook in notebooks/ with a parameters cell.")
        ui.stop_section()
    names = list(catalog)
    wanted = query.get("runbook")
    if wanted is not None and wanted not in catalog:
        st.warning(
            f"The link names runbook {untrusted.text(repr(wanted))}, which does not exist; choose one below."
        )
    chosen_name = st.selectbox(
        "Runbook",
        names,
        index=names.index(wanted) if wanted in catalog else 0,
        format_func=lambda name: f"{catalog[name].title} ({name}, {catalog[name].kind})",
        key="rb_choice",
    )
    runbook = catalog[chosen_name]
    if runbook.description:
        st.caption(runbook.description)
    from_link = wanted == runbook.name
    with st.form(f"rb_form_{runbook.name}"):
        values: dict[str, Any] = {}
        for parameter in runbook.parameters:
            if parameter.name in FLOW:
                continue
            given = query.get(parameter.name) if from_link else None
            values[parameter.name] = _parameter_widget(runbook, parameter, given)
        label = "Dry run" if runbook.kind == "runbook" else "Run"
        submitted = st.form_submit_button(label, type="primary")
    if submitted:
        st.session_state.pop(PLAN, None)
        if runbook.parameter("dry_run") is not None:
            values["dry_run"] = True
        _start(runbook, values)
        st.session_state[PLAN] = (runbook.name, values, st.session_state[CURRENT])

# --- live progress ---------------------------------------------------------------------------
current_id = st.session_state.get(CURRENT)
if current_id:
    with ui.shown_errors("Following the run"):

        @st.fragment(run_every=1.0)
        def follow() -> None:
            # It reruns on its own every second: a revoked key or an idle session stops it here
            # (the whole page reruns and shows the sign-in form), as the dashboards' refresh does.
            ui.still_signed_in()
            run = runs.get_run(engine.db, str(current_id))
            steps = st.session_state.setdefault(STEPS, {}).setdefault(run.id, [])
            line = run.progress_text
            if run.cell_index is not None and (not steps or steps[-1] != line):
                steps.append(line)
            state: Literal["running", "complete", "error"] = (
                "running" if run.active else ("complete" if run.status == "succeeded" else "error")
            )
            with st.status(
                untrusted.text(f"{run.runbook} {run.id}: {run.status} · {line}"),
                state=state,
                expanded=run.active,
            ):
                for step in steps:
                    st.markdown(untrusted.text(step))
            if run.cell_count:
                st.progress(min(1.0, (run.cell_index or 0) / run.cell_count), text=line)
            if run.active:
                if st.button("Cancel", key="rb_cancel", icon=":material/stop:"):
                    actor = ui.authorize("ops:write")
                    session = ui.current_session()
                    scopes = session.scopes if session is not None else ()
                    launch.cancel_run(engine, run.id, actor=actor, scopes=scopes)
                    st.toast(f"Cancelling {run.id}…")
                return
            st.session_state.pop(CURRENT, None)
            st.rerun(scope="app")

        follow()

# --- plan and apply --------------------------------------------------------------------------
plan = st.session_state.get(PLAN)
if plan and not st.session_state.get(CURRENT):
    plan_name, plan_values, plan_id = plan
    with ui.shown_errors("Reading the plan"):
        planned = runs.get_run(engine.db, plan_id)
        summary = planned.summary or {}
        phrase = summary.get("confirm_phrase")
        if planned.status != "succeeded":
            st.error(
                f"The dry run {planned.id} {planned.status}: {untrusted.text(planned.error or 'no error recorded')}"
            )
        elif plan_name in catalog and catalog[plan_name].kind == "runbook":
            st.subheader("Plan")
            contract_plan = summary.get("plan_id")
            if isinstance(contract_plan, str) and contract_plan:
                # The dry run planned through the contract: the same plan view as every page.
                plans.detail(plan_recovery.get(engine, contract_plan))
            else:
                st.json(summary, expanded=True)
            if not phrase:
                st.info(
                    "Nothing to apply: the plan has no confirm phrase (nothing to change, or it cannot apply)."
                )
            else:
                st.markdown("To apply, type the confirm phrase exactly:")
                st.code(phrase, language=None)
                typed = st.text_input(
                    "Confirm phrase", key="rb_confirm_text", placeholder="type the phrase above"
                )
                if st.button("Apply", type="primary", key="rb_apply"):
                    if not confirmation_matches(phrase, typed):
                        raise InvalidInput("The phrase you typed does not match the plan's confirm phrase.")
                    st.session_state.pop(PLAN, None)
                    applying = {**plan_values, "dry_run": False, "confirm": typed}
                    if (
                        isinstance(contract_plan, str)
                        and contract_plan
                        and catalog[plan_name].parameter("plan_id")
                    ):
                        # Apply exactly the plan shown above (stale if the data moved since), not a new one.
                        applying["plan_id"] = contract_plan
                    _start(catalog[plan_name], applying)
                    st.rerun()

# --- history ---------------------------------------------------------------------------------
st.subheader("Run history")
with ui.shown_errors("Reading the run history"):
    c1, c2, c3 = st.columns(3)
    f_runbook = c1.selectbox("Runbook", ["", *catalog], key="rb_f_runbook", format_func=lambda v: v or "all")
    f_status = c2.selectbox(
        "Status", ["", *runs.STATUSES], key="rb_f_status", format_func=lambda v: v or "all"
    )
    f_actor = c3.text_input("Actor", key="rb_f_actor")
    history = runs.list_runs(
        engine.db,
        runbook=f_runbook or None,
        status=f_status or None,
        actor=f_actor.strip() or None,
        limit=200,
    )
    if not history:
        st.info("No runs yet." if not (f_runbook or f_status or f_actor) else "No run matches these filters.")
    else:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "id": run.id,
                        "runbook": run.runbook,
                        "status": run.status,
                        "actor": run.actor,
                        "parameters": json.dumps(run.parameters, sort_keys=True),
                        "started": run.started_at,
                        "duration": _duration(run),
                        "error": run.error or "",
                    }
                    for run in history
                ]
            ),
            hide_index=True,
            width="stretch",
            key="rb_history",
        )
        ids = [run.id for run in history]
        linked = query.get("run")
        st.selectbox(
            "Open a run",
            ids,
            # Session state wins once set (a new run sets it); a ?run=ID link opens that run.
            index=ids.index(linked) if linked in ids and "rb_open" not in st.session_state else 0,
            key="rb_open",
            format_func=lambda i: next(f"{i} · {r.runbook}" for r in history if r.id == i),
        )

# --- run view --------------------------------------------------------------------------------
open_id = st.session_state.get("rb_open")
if open_id:
    with ui.shown_errors("Showing the run"):
        run = runs.get_run(engine.db, open_id)
        st.subheader(f"Run {run.id}: {run.runbook}")
        # Parameters, actor and error are what a caller sent or a kernel printed: text, never Markdown.
        st.markdown(
            f"**{run.status}** · by {untrusted.text(run.actor)} · {_duration(run) or 'not started'} · parameters"
        )
        st.code(json.dumps(run.parameters, sort_keys=True), language="json")
        if run.error:
            where = f"cell {run.error_cell}: " if run.error_cell else ""
            st.error(f"{where}{untrusted.text(run.error)}")
        if run.summary is not None:
            st.json(run.summary, expanded=False)
        folder = runs.run_dir(engine.settings, run.id)
        if not artifacts.can_read_files(viewer.scopes, run.runbook):
            st.info(f"This run's files quote memory content: opening them needs the {MEMORY_CONTENT} scope.")
        elif run.files_removed:
            st.info("This run's files were removed by retention (JAMEY_RUNBOOK_KEEP).")
        elif (folder / runs.NOTEBOOK_FILE).is_file():
            artifacts.require_files(viewer.actor, viewer.scopes, run.runbook)
            d1, d2 = st.columns(2)
            d1.download_button(
                "Download notebook (.ipynb)",
                (folder / runs.NOTEBOOK_FILE).read_bytes(),
                file_name=f"{run.runbook}-{run.id}.ipynb",
                mime="application/x-ipynb+json",
                key="rb_dl_nb",
            )
            if (folder / runs.HTML_FILE).is_file():
                d2.download_button(
                    "Download HTML",
                    (folder / runs.HTML_FILE).read_bytes(),
                    file_name=f"{run.runbook}-{run.id}.html",
                    mime="text/html",
                    key="rb_dl_html",
                )
            with st.container(border=True):
                show_notebook(folder / runs.NOTEBOOK_FILE, key=f"rb_nb_{run.id}")
        elif run.active:
            st.info("The executed notebook appears here when the run ends.")

# --- schedules -------------------------------------------------------------------------------
show_schedules(engine, catalog)
