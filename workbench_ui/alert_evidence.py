"""The Alerts page's evidence panel: an alert's diagnosis (verdict, facts, link to the run) and
"Run diagnosis again" (ops:write). The lookups live in jamey_engine.runbooks.alert_evidence."""

from __future__ import annotations

import streamlit as st

import workbench_ui as ui
from jamey_engine.runbooks.alert_evidence import AlertEvidence, rediagnose

RUNBOOKS_PAGE = "pages/runbooks.py"
NOTICE = "alert_evidence_notice"


def _again(fingerprint: str) -> None:
    actor = ui.authorize("ops:write")
    session = ui.current_session()
    scopes = session.scopes if session is not None else ()
    run_id = rediagnose(ui.engine(), fingerprint, actor=actor, scopes=scopes)
    st.session_state[NOTICE] = f"Diagnosis started again: run {run_id}."


def _charts(found: AlertEvidence) -> None:
    """The diagnosis's Prometheus series around the firing time, two charts a row."""
    from workbench_ui.charts import evidence_figure

    figures = [
        (record, figure)
        for record in found.series
        if (figure := evidence_figure(record, found.starts_at)) is not None
    ]
    for start in range(0, len(figures), 2):
        columns = st.columns(2)
        for column, (record, figure) in zip(columns, figures[start : start + 2], strict=False):
            column.plotly_chart(
                figure,
                key=f"evidence_chart_{found.fingerprint}_{record.get('name')}",
            )


def render_evidence(found: AlertEvidence | None, *, can_write: bool) -> None:
    """Show ``found``'s diagnosis under its alert: "Evidence, gathered at HH:MM:SS in N s", the
    verdict, the facts, the charts of its Prometheus series and a link to the run; while it runs, its progress; with ops:write, a
    button that starts it again. Nothing when the history holds no such alert."""
    if found is None:
        return
    run = found.run
    if run is None:
        st.caption(":material/troubleshoot: No diagnosis yet (JAMEY_AUTO_DIAGNOSE=0, or not delivered).")
    elif run.active:
        st.caption(f":material/troubleshoot: Gathering the evidence: run {run.id}, {run.progress_text}.")
    else:
        with st.container(border=True):
            st.markdown(f"**{found.gathered_text}**")
            if found.verdict:
                st.markdown(found.verdict)
            elif run.error:
                st.error(f"The diagnosis {run.status}: {run.error}")
            if found.evidence:
                st.dataframe(
                    [{"fact": name, "value": str(value)} for name, value in found.evidence.items()],
                    hide_index=True,
                    key=f"evidence_{found.fingerprint}",
                )
            _charts(found)
            suggested = found.summary.get("suggested_runbook")
            if suggested:
                st.caption(f"Suggested runbook: **{suggested}**")
    cols = st.columns(2)
    if run is not None:
        cols[0].page_link(
            RUNBOOKS_PAGE, label="The full run", icon=":material/description:", query_params={"run": run.id}
        )
    again = can_write and (run is None or not run.active)
    if again and cols[1].button(
        "Run diagnosis again", key=f"rediagnose_{found.fingerprint}", icon=":material/refresh:"
    ):
        with ui.shown_errors("Starting the diagnosis"):
            _again(found.fingerprint)
            st.rerun()
    notice = st.session_state.pop(NOTICE, None)
    if notice:
        st.success(notice)
