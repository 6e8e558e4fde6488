"""Overview: service health, firing alerts and four headline numbers colored against the
alert thresholds."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

import workbench_ui as ui
from jamey_engine import charts
from jamey_engine.workbench import check_health

ui.require_session()
st.title("Overview")
current = ui.settings()

# --- service health -------------------------------------------------------------------------
with ui.shown_errors("The health check"):
    health = check_health(current.service_url, timeout=2.0)
    if health.ok:
        st.success(f"Service healthy at {health.url} ({health.detail}).", icon=":material/check_circle:")
    else:
        st.error(f"Service unhealthy at {health.url}: {health.detail}.", icon=":material/error:")
    if health.body:
        with st.expander("Health details"):
            st.json(health.body)


def _threshold(value: object) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)  # type: ignore[arg-type]


# --- headline numbers -----------------------------------------------------------------------
with ui.shown_errors("The headline numbers"):
    from jamey_engine import promql

    st.subheader("Headline numbers")
    headline = ui.prom_query("headline")
    cards = (
        ("Error rate", headline.get("error_rate"), "ratio", _threshold(promql.ERROR_RATE_THRESHOLD)),
        ("p95 latency", headline.get("p95_latency"), "seconds", _threshold(promql.P95_LATENCY_THRESHOLD)),
        (
            "Last good backup",
            headline.get("backup_age_seconds"),
            "seconds",
            _threshold(promql.BACKUP_AGE_THRESHOLD),
        ),
        (
            "Total index size",
            headline.get("total_index_bytes"),
            "bytes",
            _threshold(promql.INDEX_SIZE_THRESHOLD),
        ),
    )
    for column, (label, value, unit, limit) in zip(st.columns(4), cards, strict=True):
        level = charts.threshold_level(value, limit)
        color = charts.LEVEL_COLORS[level]
        text = charts.format_value(value, unit)  # type: ignore[arg-type]
        if label == "Last good backup" and value is not None:
            text += " ago"
        with column.container(border=True):
            st.caption(label)
            st.markdown(f"### :{color}[{text}]")
            st.caption(f"{level} · alert at {charts.format_value(limit, unit)}")  # type: ignore[arg-type]

# --- firing alerts --------------------------------------------------------------------------
with ui.shown_errors("The alerts"):
    st.subheader("Firing alerts")
    alerts = ui.prom_query("alerts")
    firing = alerts[alerts["state"] == "firing"] if not alerts.empty else alerts
    if firing.empty:
        st.success("No alert is firing.", icon=":material/notifications_off:")
    else:
        st.dataframe(
            firing[["alertname", "severity", "active_at"]],
            hide_index=True,
            width="stretch",
        )
        st.page_link("pages/alerts.py", label="Details on the Alerts page", icon=":material/arrow_forward:")
