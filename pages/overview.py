"""Overview: service health, firing alerts, four headline numbers colored against the
alert thresholds, and the installation findings of ``jamey doctor``."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

import workbench_ui as ui
from jamey_engine import doctor
from jamey_engine.durations import format_moment, utcnow
from jamey_engine.errors import NotFound
from jamey_engine.observability import promql
from jamey_engine.vault.safety import backup_safety, safety_cards
from workbench_ui import charts
from workbench_ui.health import check_health

ui.require_page("overview")
st.title("Overview")
current = ui.settings()

# --- service health -------------------------------------------------------------------------
with ui.shown_errors("The health check"):
    health = check_health(current.service_url, timeout=2.0)
    if health.ok:
        st.success(f"Service healthy at {health.url} ({health.detail}).", icon=":material/check_circle:")
    else:
        detail = health.detail if health.url in health.detail else f"{health.url}: {health.detail}"
        st.error(f"Service unhealthy: {detail}.", icon=":material/error:")
    if health.body:
        with st.expander("Health details"):
            st.json(health.body)


def _card(label: str, text: str, level: charts.Level, note: str) -> None:
    with st.container(border=True):
        st.caption(label)
        st.markdown(f"### :{charts.LEVEL_COLORS[level]}[{text}]")
        st.caption(f"{level} · {note}")


def _largest_layer() -> tuple[str, float] | None:
    """The biggest layer's index now: the per-layer size alert compares each layer with 1 GiB."""
    end = utcnow()
    try:
        latest = charts.latest_by(ui.prom_frame("index_size", end - timedelta(minutes=10), end), "layer")
    except NotFound:
        return None
    return max(latest.items(), key=lambda item: item[1]) if latest else None


# --- headline numbers -----------------------------------------------------------------------
with ui.shown_errors("The headline numbers"):
    st.subheader("Headline numbers")
    headline = ui.prom_query("headline")
    error_rate, p95 = headline.get("error_rate"), headline.get("p95_latency")
    backup_age, total_bytes = headline.get("backup_age_seconds"), headline.get("total_index_bytes")
    largest = _largest_layer()
    cards = st.columns(4)
    with cards[0]:
        _card(
            "Error rate",
            charts.format_value(error_rate, "ratio"),
            charts.threshold_level(error_rate, promql.ERROR_RATE_THRESHOLD),
            f"alert at {charts.format_value(promql.ERROR_RATE_THRESHOLD, 'ratio')}",
        )
    with cards[1]:
        _card(
            "p95 latency",
            charts.format_value(p95, "seconds"),
            charts.threshold_level(p95, promql.P95_LATENCY_THRESHOLD),
            f"alert at {charts.format_value(promql.P95_LATENCY_THRESHOLD, 'seconds')}",
        )
    with cards[2]:
        note = f"alert after {charts.format_value(promql.BACKUP_AGE_THRESHOLD, 'seconds')}"
        if backup_age is None:
            # No sample is not "no backup" (Prometheus may not have scraped yet): ask the catalog.
            good = ui.engine().vault.latest_good()
            backup_age = None if good is None else (utcnow() - good.created_at).total_seconds()
            note = "from the backup catalog (no Prometheus sample yet); " + note
        _card(
            "Last good backup",
            "none yet" if backup_age is None else charts.format_value(backup_age, "seconds") + " ago",
            # No successful backup at all is as bad as one too old.
            "critical"
            if backup_age is None
            else charts.threshold_level(backup_age, promql.BACKUP_AGE_THRESHOLD),
            note,
        )
    with cards[3]:
        _card(
            "Total index size",
            charts.format_value(total_bytes, "bytes"),
            charts.threshold_level(largest[1] if largest else total_bytes, promql.INDEX_SIZE_THRESHOLD),
            (f"largest layer {largest[0]} {charts.format_value(largest[1], 'bytes')}; " if largest else "")
            + f"alert at {charts.format_value(promql.INDEX_SIZE_THRESHOLD, 'bytes')} per layer",
        )

# --- backups: off-site, drills, signatures (the facts and their levels come from the engine) ------
with ui.shown_errors("The backup safety"):
    st.subheader("Backups off-site")
    cards = st.columns(4)
    for column, card in zip(cards, safety_cards(backup_safety(current)), strict=True):
        with column:
            _card(card.label, card.text, card.level, card.note)  # type: ignore[arg-type]

# --- firing alerts --------------------------------------------------------------------------
with ui.shown_errors("The alerts"):
    st.subheader("Firing alerts")
    alerts = ui.prom_query("alerts")
    firing = alerts[alerts["state"] == "firing"] if not alerts.empty else alerts
    pending = int((alerts["state"] == "pending").sum()) if not alerts.empty else 0
    if firing.empty:
        st.success(
            "No alert is firing." + (f" {pending} pending (see Alerts)." if pending else ""),
            icon=":material/notifications_off:",
        )
    else:
        shown = firing[["alertname", "severity", "active_at"]].copy()
        shown["active_at"] = [
            format_moment(at) if not pd.isna(at) else "unknown" for at in shown["active_at"]
        ]
        st.dataframe(shown.rename(columns={"active_at": "active since"}), hide_index=True, width="stretch")
        st.page_link("pages/alerts.py", label="Details on the Alerts page", icon=":material/arrow_forward:")

# --- installation (the same findings as `jamey doctor`) ---------------------------------------
# A table cell shows text as it is (":material/…:" codes render only in Markdown): plain
# symbols every font has (colour emoji need a font a headless or minimal desktop lacks).
_STATUS_ICONS = {"ok": "✓", "warning": "⚠", "problem": "✗"}

with ui.shown_errors("The installation check"):
    st.subheader("Installation")
    report = doctor.run(current)
    needing = [finding for finding in report.findings if finding.status != "ok"]
    if report.needs_action:
        st.error(
            f"{sum(f.status == 'problem' for f in report.findings)} problem(s) need action "
            "(the same list as `jamey doctor`).",
            icon=":material/error:",
        )
    elif needing:
        st.warning(
            f"{len(needing)} finding(s) worth a look; nothing needs action.", icon=":material/warning:"
        )
    else:
        st.success(
            "Permissions, free space, database, layers and backups: all fine.", icon=":material/check_circle:"
        )
    st.dataframe(
        [
            {
                "": _STATUS_ICONS.get(f.status, ""),
                "check": f.check,
                "status": f.status,
                "detail": f.detail,
                "fix": f.fix or "",
            }
            for f in report.findings
        ],
        hide_index=True,
        width="stretch",
    )
