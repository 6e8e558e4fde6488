"""Dashboards: the service's metrics from Prometheus over a time range, with threshold lines
from the alert rules, a CSV download and a Prometheus link per chart, and (toggle
"Annotations") the operations and alert intervals of the same range drawn on every chart. The
range, an optional single chart and the annotations toggle live in the URL, so a link can be
shared."""

from __future__ import annotations

import contextlib
import functools
from datetime import datetime, timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import workbench_ui as ui
from jamey_engine.durations import parse_duration, utcnow
from jamey_engine.errors import InvalidInput, JameyError, NotFound
from jamey_engine.observability import promql
from jamey_engine.observability.annotations import chart_annotations
from jamey_engine.observability.dashboards import ChartSpec, annotations_for_chart, chart_specs
from workbench_ui import charts, untrusted
from workbench_ui.timerange import CUSTOM, DEFAULT_PRESET, PRESETS, TimeRange, resolve_range

REFRESH_CHOICES = ("off", "10s", "30s", "1m", "5m")
# A built figure is kept as long as the data it shows could be served from the query cache and the
# range's alignment (a preset's window moves every RANGE_ALIGNMENT_SECONDS).
FIGURE_TTL_SECONDS = 60
CHART_SPECS = chart_specs()

ui.require_page("dashboards")
st.title("Dashboards")
params = st.query_params

# --- the range, from the URL on first load, then from the widgets ---------------------------
if "dash_range" not in st.session_state:
    wanted = params.get("range", DEFAULT_PRESET)
    st.session_state["dash_range"] = wanted if wanted in (*PRESETS, CUSTOM) else DEFAULT_PRESET
    st.session_state["dash_start"] = params.get("start", "")
    st.session_state["dash_end"] = params.get("end", "")
    refresh = params.get("refresh", "off")
    st.session_state["dash_refresh"] = refresh if refresh in REFRESH_CHOICES else "off"
    st.session_state["dash_annotations"] = params.get("annotations", "on") != "off"
    if wanted not in (*PRESETS, CUSTOM):
        st.warning(
            f"Range {untrusted.text(repr(wanted))} from the link is not one of {', '.join(PRESETS)} or custom; showing {DEFAULT_PRESET}."
        )

controls = st.columns([5, 3, 3, 2, 2], vertical_alignment="bottom")
preset = (
    controls[0].segmented_control("Time range", [*PRESETS, CUSTOM], key="dash_range", selection_mode="single")
    or DEFAULT_PRESET
)
if preset == CUSTOM:
    if not st.session_state.get("dash_start") and not st.session_state.get("dash_end"):
        # Switching to custom starts from the range shown so far, ready to edit.
        shown = st.session_state.get("dash_last_window") or resolve_range(DEFAULT_PRESET)
        bounds = TimeRange(CUSTOM, shown.start, shown.end).query_params()
        st.session_state["dash_start"], st.session_state["dash_end"] = bounds["start"], bounds["end"]
    controls[1].text_input("Start (UTC, ISO 8601)", key="dash_start", placeholder="2026-01-31T12:00:00Z")
    controls[2].text_input("End (UTC, ISO 8601)", key="dash_end", placeholder="2026-01-31T18:00:00Z")
refresh = controls[3].selectbox("Auto-refresh", REFRESH_CHOICES, key="dash_refresh")
show_annotations = controls[4].toggle(
    "Annotations",
    key="dash_annotations",
    help="Operations (backups, restores, prunes, runbooks, key changes) and alert firing intervals",
)

chart_names = [spec.name for spec in CHART_SPECS]
only = params.get("chart")
if only and only not in chart_names:
    st.warning(f"No chart named {untrusted.text(repr(only))}; showing them all.")
    only = None

try:
    time_range: TimeRange | None = resolve_range(
        preset, st.session_state.get("dash_start"), st.session_state.get("dash_end")
    )
except InvalidInput as err:
    st.error(err.message)
    time_range = None

if time_range is not None:
    st.session_state["dash_last_window"] = time_range
    wanted_params = {**time_range.query_params(), **({"chart": only} if only else {})}
    wanted_params["annotations"] = "on" if show_annotations else "off"
    if refresh != "off":
        wanted_params["refresh"] = refresh
    if dict(params) != wanted_params:
        params.from_dict(wanted_params)

if only and st.button("Show all charts", key="show_all"):
    del params["chart"]
    st.rerun()


def _annotations(window: TimeRange) -> pd.DataFrame | None:
    """The engine's annotations for the window (a preset's up to this moment: its end is aligned
    to the step), or None (toggle off, or the database failed: the charts still draw, with a note)."""
    if not show_annotations:
        return None
    try:
        return chart_annotations(ui.engine().db, window.start, _annotation_end(window))
    except JameyError as err:
        st.warning(f"Annotations unavailable: {err.message}")
        return None


def _annotation_end(window: TimeRange) -> datetime:
    return window.end if window.preset == CUSTOM else max(window.end, utcnow())


@st.cache_resource(ttl=FIGURE_TTL_SECONDS, max_entries=64, show_spinner=False)
def _figure(
    name: str, frame: pd.DataFrame, notes: pd.DataFrame | None, start: datetime, end: datetime
) -> go.Figure:
    """The chart of one series, built once for the same data, annotations and window and shared
    by every session and rerun that shows them (a refresh or a second visit within the range's
    alignment draws the cached figure; st.plotly_chart copies it, never changes it).
    Raises ValueError when the series cannot be drawn."""
    spec = next(spec for spec in CHART_SPECS if spec.name == name)
    return charts.time_series_figure(
        frame,
        title="",
        unit=spec.unit,
        by=spec.by,
        threshold=spec.threshold,
        threshold_label=spec.threshold_label,
        stacked=spec.stacked,
        name=spec.series_name,
        annotations=annotations_for_chart(notes, spec.name) if notes is not None else None,
        window=(start, end),
    )


def _render_chart(
    spec: ChartSpec, window: TimeRange, result: pd.DataFrame | JameyError, notes: pd.DataFrame | None = None
) -> bool:
    """Draw one chart from its query's ``result`` (a frame, or the error the query raised);
    False when Prometheus is unreachable (the caller stops then)."""
    with st.container(border=True):
        st.markdown(f"#### {spec.title}")
        frame: pd.DataFrame | None = None
        if isinstance(result, promql.PrometheusUnreachable):
            st.error(result.message)
            return False
        if isinstance(result, NotFound):  # NoData
            st.info(
                f"No data for {spec.title.lower()} between {window.start:%Y-%m-%d %H:%M} and {window.end:%Y-%m-%d %H:%M} UTC."
            )
        elif isinstance(result, JameyError):
            st.error(result.message)
        elif result.empty:
            st.info(f"No data for {spec.title.lower()} in this range.")
        else:
            frame = result
        if frame is not None:
            try:
                figure = _figure(spec.name, frame, notes, window.start, _annotation_end(window))
                st.plotly_chart(figure, key=f"chart_{spec.name}")
            except ValueError as err:
                st.error(f"Cannot draw {spec.title}: {err}")
        left, right = st.columns(2)
        if frame is not None:
            left.download_button(
                "Download CSV",
                data=functools.partial(charts.to_csv, frame),  # built on a click, not every run
                file_name=f"{spec.name}_{window.start:%Y%m%dT%H%M}_{window.end:%Y%m%dT%H%M}.csv",
                mime="text/csv",
                key=f"csv_{spec.name}",
                on_click="ignore",
                icon=":material/download:",
            )
        with contextlib.suppress(JameyError):
            right.link_button(
                "Open in Prometheus",
                ui.prom().query_link(spec.name, window.start, window.end),
                icon=":material/open_in_new:",
            )
    return True


def _render_all() -> None:
    ui.still_signed_in()
    if time_range is None:
        return
    window = time_range
    if time_range.preset != CUSTOM:  # a refresh moves a preset range forward
        window = resolve_range(time_range.preset)
    specs = [s for s in CHART_SPECS if not only or s.name == only]
    st.caption(
        f"{window.start:%Y-%m-%d %H:%M:%S} → {window.end:%Y-%m-%d %H:%M:%S} UTC · {ui.settings().prometheus_url}"
    )
    notes = _annotations(window)
    results = ui.prom_frames([spec.name for spec in specs], window.start, window.end)
    columns = st.columns(2)
    for index, spec in enumerate(specs):
        with columns[index % 2] if len(specs) > 1 else st.container():
            if not _render_chart(spec, window, results[spec.name], notes):
                return


interval: timedelta | None = None if refresh == "off" else parse_duration(refresh)
st.fragment(_render_all, run_every=interval)()
