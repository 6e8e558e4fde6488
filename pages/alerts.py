"""Alerts: firing and pending alerts with their labels and annotations, each linked to the
matching dashboard and its runbook."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

import workbench_ui as ui
from jamey_engine.observability.dashboards import chart_for_alert
from jamey_engine.runbooks.links import runbook_section

ui.require_session("ops:read")
st.title("Alerts")
REPO = Path(__file__).resolve().parents[1]
SEVERITY_COLORS = {"critical": "red", "warning": "orange", "info": "blue"}


def _as_dict(value: object) -> dict:
    return dict(value) if isinstance(value, dict) else {}


with ui.shown_errors("Reading the alerts"):
    alerts = ui.prom_query("alerts")
    for state, heading in (("firing", "Firing"), ("pending", "Pending")):
        subset = alerts[alerts["state"] == state] if not alerts.empty else alerts
        st.subheader(f"{heading} ({len(subset)})")
        if subset.empty:
            st.caption(f"No {state} alerts.")
            continue
        for alert in subset.itertuples(index=False):
            labels = _as_dict(alert.labels)
            notes = _as_dict(alert.annotations)
            color = SEVERITY_COLORS.get(str(alert.severity), "gray")
            since = f"{alert.active_at:%Y-%m-%d %H:%M:%S} UTC" if not pd.isna(alert.active_at) else "unknown"
            with st.container(border=True):
                st.markdown(
                    f"**{alert.alertname}** :{color}-badge[{alert.severity}] :gray-badge[{state} since {since}]"
                )
                if notes.get("summary"):
                    st.write(notes["summary"])
                if notes.get("description"):
                    st.caption(notes["description"])
                links = st.columns(2)
                chart = chart_for_alert(str(alert.alertname), notes)
                if chart:
                    links[0].page_link(
                        "pages/dashboards.py",
                        label="Matching dashboard",
                        icon=":material/monitoring:",
                        query_params={"chart": chart, "range": "6h"},
                    )
                runbook = str(notes.get("runbook_url", ""))
                if runbook.startswith(("http://", "https://")):
                    links[1].link_button("Runbook", runbook, icon=":material/menu_book:")
                elif runbook:
                    links[1].caption(f":material/menu_book: Runbook: `{runbook}` in the repository")
                    section = runbook_section(runbook, REPO)
                    if section:
                        with st.expander("Runbook"):
                            st.markdown(section)
                with st.expander("Labels and annotations"):
                    st.json({"labels": labels, "annotations": notes}, expanded=True)
