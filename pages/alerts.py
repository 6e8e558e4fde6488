"""Alerts: what fires now with its Alertmanager state (grouped as Alertmanager groups it), silences
(create from any alert, expire behind a confirmation) and the history of delivered notifications
(table, timeline, time to resolve). Viewing needs ops:read; silencing and expiring need ops:write.
The rules (matching, grouping, intervals, statistics) live in jamey_engine; this page renders."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

import workbench_ui as ui
from jamey_engine.durations import format_duration, parse_duration, utcnow
from jamey_engine.errors import InvalidInput, JameyError
from jamey_engine.observability import alert_history
from jamey_engine.observability.alert_acks import Acknowledgement, active_acknowledgements
from jamey_engine.observability.alert_state import AlertView, current_alerts, grouped
from jamey_engine.observability.alertmanager import (
    Alert,
    AlertmanagerClient,
    matchers_from_labels,
    matching_alerts,
    parse_matchers,
)
from jamey_engine.observability.dashboards import chart_for_alert
from jamey_engine.observability.promql import PrometheusUnreachable
from jamey_engine.observability.silences import create_silence, expire_silence
from jamey_engine.runbooks.alert_evidence import AlertEvidence, evidence_for, latest_evidence
from jamey_engine.runbooks.alert_guides import GUIDES
from jamey_engine.runbooks.links import (
    ALERTS_PAGE,
    alert_docs_url,
    links_for_alert,
    runbook_for_alert,
    runbook_page_url,
    trusted_link,
)
from workbench_ui import charts, untrusted
from workbench_ui.acknowledgements import show_acknowledgement, show_acknowledgement_history
from workbench_ui.alert_evidence import render_evidence

session = ui.require_page("alerts")
can_write = session.can("ops:write")
st.title("Alerts")
DURATIONS = ("30m", "1h", "2h", "4h", "1d", "custom")
HISTORY_DAYS = (1, 7, 30, 90)
TABLE_ROWS = 2000
ALL = "(all)"


def _release(client: AlertmanagerClient) -> None:
    client.close()


@st.cache_resource(show_spinner=False, on_release=_release)
def _client_for(url: str, timeout: float) -> AlertmanagerClient:
    return AlertmanagerClient(url, timeout)


settings = ui.settings()
client = _client_for(settings.alertmanager_url, settings.alertmanager_timeout)


def _fill_silence(labels: dict[str, str]) -> None:
    st.session_state["silence_matchers"] = "\n".join(str(m) for m in matchers_from_labels(labels))


def _render_alert(view: AlertView, ack: Acknowledgement | None = None) -> None:
    color = charts.severity_color(view.severity)
    since = f"{view.since:%Y-%m-%d %H:%M:%S} UTC" if view.since else "unknown"
    state = f":violet-badge[{view.status_text}]" if view.silenced or view.inhibited else ""
    with st.container(border=True):
        st.markdown(
            f"**{untrusted.text(view.alertname)}** :{color}-badge[{untrusted.text(view.severity)}] "
            f":gray-badge[{untrusted.text(view.state)} since {since}] {state}"
        )
        # Names, summaries and descriptions are whatever Alertmanager was sent: text, never Markdown.
        if view.summary:
            st.markdown(untrusted.text(view.summary))
        show_acknowledgement(view, ack, can_write)
        if view.annotations.get("description"):
            st.caption(untrusted.text(view.annotations["description"]))
        links = st.columns(4)
        chart = chart_for_alert(view.alertname, view.annotations)
        if chart:
            links[0].page_link(
                "pages/dashboards.py",
                label="Matching dashboard",
                icon=":material/monitoring:",
                query_params={"chart": chart, "range": "6h"},
            )
        runbook = runbook_for_alert(view.alertname, view.labels)
        if runbook is not None and view.state == "firing":
            links[1].link_button("Run runbook", runbook_page_url("", runbook), icon=":material/play_arrow:")
        if can_write and view.fingerprint and not view.silenced:
            links[2].button(
                "Silence…",
                key=f"silence_for_{view.fingerprint}",
                on_click=_fill_silence,
                args=(view.labels,),
                icon=":material/notifications_off:",
                help="Fill the silence form below with this alert's labels",
            )
        url = view.annotations.get("runbook_url", "")
        mapped = links_for_alert(view.alertname)
        if url and f"/{ALERTS_PAGE}?" not in url:
            if trusted_link(url, settings.workbench_url):
                links[3].link_button("Runbook", url, icon=":material/menu_book:")
            elif "://" in url:
                st.caption(
                    f":material/menu_book: Runbook: {untrusted.text(url)} (not a link to this workbench: not opened)"
                )
        if mapped:  # the guide of jamey_engine/runbooks/alert_guides.py, as the alert's docs page has it
            guide = GUIDES[mapped.guide]
            with st.expander(f"Runbook: {guide.title}"):
                st.markdown(guide.text)
                st.markdown(f"**Silencing:** {guide.silence}")
            if settings.docs_url:
                st.caption(
                    f":material/menu_book: [{view.alertname} in the docs]"
                    f"({alert_docs_url(settings.docs_url, view.alertname)})"
                )
        with st.expander("Labels and annotations"):
            st.json({"labels": view.labels, "annotations": view.annotations}, expanded=True)
        _render_diagnosis(view)


# --- diagnosis (evidence gathered by the alert's diagnosis run) ------------------------------
evidence: dict[str, AlertEvidence] = {}
focus = st.query_params.get("alert")  # the alert rules' runbook_url opens ?alert=NAME


def _render_diagnosis(view: AlertView) -> None:
    if view.state == "firing" and view.fingerprint:
        render_evidence(evidence.get(view.fingerprint), can_write=can_write)


def _render_focus_from_history(alertname: str, shown: list[AlertView]) -> None:
    """For ?alert=NAME when it is not firing now: its newest diagnosis from the history."""
    if any(view.alertname == alertname for view in shown):
        return
    latest = latest_evidence(ui.engine().db, alertname)
    if latest is None:
        st.caption(f"{alertname} is not firing, and the alert history holds no diagnosis of it.")
        return
    st.markdown(
        f"**{alertname}** :gray-badge[{latest.status}, fired {latest.starts_at:%Y-%m-%d %H:%M:%S} UTC]"
    )
    render_evidence(latest, can_write=can_write)


# --- now -------------------------------------------------------------------------------------
am_alerts: list[Alert] = []
am_ok = False
with ui.shown_errors("Reading the alerts"):
    try:
        prom_alerts = ui.prom_query("alerts")
    except PrometheusUnreachable as err:
        st.error(err.message)
        prom_alerts = None
    try:
        am_alerts = client.alerts()
        silences = client.silences()
        groups = client.alert_groups()
        am_ok = True
    except JameyError as err:
        st.error(err.message)
        silences, groups = [], []
    views = current_alerts(prom_alerts, am_alerts, silences)
    if focus:
        st.info(f"Showing {focus} (opened from its alert). [Show every alert](?)")
        views = [v for v in views if v.alertname == focus]
    evidence = evidence_for(ui.engine().db, [v.fingerprint for v in views if v.fingerprint])
    acks = active_acknowledgements(ui.engine().db)
    firing = [v for v in views if v.state == "firing"]
    pending = [v for v in views if v.state == "pending"]
    st.subheader(f"Now: {len(firing)} firing, {len(pending)} pending")
    if not views and (am_ok or prom_alerts is not None):
        st.caption("No firing or pending alerts.")
    for title, members in grouped(views, groups):
        st.markdown(f"##### {untrusted.text(title)}")
        for view in members:
            _render_alert(view, acks.get(view.fingerprint))
    if focus:
        _render_focus_from_history(focus, views)

# --- silences --------------------------------------------------------------------------------
st.subheader("Silences")
notice = st.session_state.pop("alerts_notice", None)
if notice:
    st.success(notice)
if not am_ok:
    st.caption("Silences need Alertmanager (see the error above).")
elif not can_write:
    st.caption("Silencing and expiring need the **ops:write** scope.")
else:
    with ui.shown_errors("The silence form"), st.container(border=True):
        st.markdown("**New silence**: one matcher a line (NAME=VALUE, NAME!=VALUE, NAME=~REGEX)")
        text = st.text_area(
            "Matchers", key="silence_matchers", height=110, placeholder="alertname=JameyBackupFailed"
        )
        cols = st.columns([4, 2, 6], vertical_alignment="bottom")
        preset = cols[0].segmented_control("Duration", DURATIONS, key="silence_preset", default="2h") or "2h"
        custom = cols[1].text_input(
            "Custom", key="silence_custom", placeholder="90m", disabled=preset != "custom"
        )
        comment = cols[2].text_input("Comment (required)", key="silence_comment", placeholder="why")
        caught: list[Alert] = []
        problem = None
        try:
            matchers = parse_matchers(text.splitlines()) if text.strip() else []
            caught = matching_alerts(am_alerts, matchers) if matchers else []
        except InvalidInput as err:
            problem, matchers = err.message, []
        if problem:
            st.error(untrusted.text(problem))
        elif matchers and caught:
            names = ", ".join(sorted({a.alertname for a in caught}))
            st.info(f"These matchers catch {len(caught)} current alert(s): {untrusted.text(names)}.")
        elif matchers:
            st.warning("These matchers catch no current alert; a silence would match nothing.")
        if st.button("Silence", key="silence_submit", type="primary", disabled=not caught):
            actor = ui.authorize("ops:write")
            length = parse_duration(custom if preset == "custom" else preset, field="duration")
            engine = ui.engine()
            silence_id = create_silence(
                client, engine.db, engine.events, matchers, length, actor=actor, comment=comment
            )
            st.session_state["alerts_notice"] = (
                f"Silenced {len(caught)} alert(s) until {utcnow() + length:%Y-%m-%d %H:%M} UTC "
                f"(silence {silence_id})."
            )
            for key in ("silence_matchers", "silence_comment"):
                st.session_state.pop(key, None)
            st.rerun()

with ui.shown_errors("Reading the silences"):
    if am_ok:
        if not silences:
            st.caption("No active or pending silence.")
        else:
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "id": s.id,
                            "state": s.state,
                            "matchers": s.matcher_text,
                            "created by": s.created_by,
                            "starts": s.starts_at,
                            "ends": s.ends_at,
                            "comment": s.comment,
                        }
                        for s in silences
                    ]
                ),
                hide_index=True,
            )
            if can_write:
                cols = st.columns([6, 2], vertical_alignment="bottom")
                choice = cols[0].selectbox(
                    "Silence to expire",
                    [s.id for s in silences],
                    format_func=lambda sid: next(
                        f"{s.matcher_text} (by {s.created_by})" for s in silences if s.id == sid
                    ),
                    key="expire_choice",
                )
                if cols[1].button("Expire…", key="expire_ask"):
                    st.session_state["expire_pending"] = choice
                pending_id = st.session_state.get("expire_pending")
                if pending_id:
                    st.warning(f"Expire silence {pending_id}? The alerts it silences notify again.")
                    yes, no = st.columns(2)
                    if yes.button("Yes, expire it", key="expire_confirm", type="primary"):
                        actor = ui.authorize("ops:write")
                        st.session_state.pop("expire_pending", None)
                        engine = ui.engine()
                        expire_silence(client, engine.db, engine.events, pending_id, actor=actor)
                        st.session_state["alerts_notice"] = f"Silence {pending_id} expired."
                        st.rerun()
                    if no.button("Cancel", key="expire_cancel"):
                        st.session_state.pop("expire_pending", None)
                        st.rerun()

# --- history ---------------------------------------------------------------------------------
st.subheader("History")
with ui.shown_errors("Reading the alert history"):
    db = ui.engine().db
    cols = list(st.columns(4))
    days = cols[0].selectbox(
        "Range", HISTORY_DAYS, index=1, format_func=lambda d: f"last {d} days", key="history_days"
    )
    end = utcnow()
    start = end - timedelta(days=days)
    spans = alert_history.intervals(db, start, end)
    alertnames = sorted(set(spans["alertname"]))
    alertname = cols[1].selectbox("Alert", [ALL, *alertnames], key="history_alert")
    severity = cols[2].selectbox("Severity", [ALL, *charts.SEVERITY_COLORS], key="history_severity")
    layer = cols[3].selectbox(
        "Layer", [ALL, "short_term", "long_term", "working", "episodic", "semantic"], key="history_layer"
    )
    chosen = {
        "alertname": None if alertname == ALL else alertname,
        "severity": None if severity == ALL else severity,
        "layer": None if layer == ALL else layer,
    }
    for column, value in chosen.items():
        if value:
            spans = spans[spans[column] == value]
    frame = alert_history.history_frame(db, start, end, limit=TABLE_ROWS, **chosen)
    if frame.empty and spans.empty:
        st.caption(f"No alert notification in the last {days} days.")
    else:
        st.plotly_chart(charts.alert_timeline_figure(spans, start, end), key="alert_timeline")
        stats = alert_history.resolve_stats(spans)

        def _human(seconds: float) -> str:
            if pd.isna(seconds):
                return "–"
            return format_duration(timedelta(seconds=round(seconds))) if seconds >= 1 else "<1s"

        st.markdown("**Per alert**")
        st.dataframe(
            pd.DataFrame(
                {
                    "alert": stats["alertname"],
                    "fired": stats["fired"],
                    "resolved": stats["resolved"],
                    "mean time to resolve": stats["mean_resolve_seconds"].map(_human),
                    "longest time to resolve": stats["longest_resolve_seconds"].map(_human),
                }
            ),
            hide_index=True,
            key="history_stats",
        )
        st.markdown(
            f"**Notifications** (newest first{', the newest 2,000' if len(frame) >= TABLE_ROWS else ''})"
        )
        st.dataframe(frame, hide_index=True, key="history_table")
    show_acknowledgement_history(db, start)
