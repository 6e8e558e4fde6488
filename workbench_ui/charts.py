"""Plotly figures for the workbench dashboards, built from the DataFrames of ``promql``.

Pure functions, no Streamlit: each figure has a legend entry per series, and a threshold
(from the alert rules) is drawn as a dashed line that is always inside the y-range, so an
operator sees how far a series is from alerting even when the data sits far below it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from jamey_engine.observability.dashboards import Unit
from jamey_engine.sizes import format_bytes

Level = Literal["ok", "warning", "critical", "unknown"]

# The one palette: each colour by the name Streamlit's badges and cards use, and the hex the
# charts draw it in. Severities and levels are given by name only.
HUES: dict[str, str] = {
    "red": "#d62728",
    "orange": "#ff7f0e",
    "blue": "#1f77b4",
    "green": "#2ca02c",
    "gray": "#7f7f7f",
}
SEVERITY_COLORS: dict[str, str] = {"critical": "red", "warning": "orange", "info": "blue"}
LEVEL_COLORS: dict[str, str] = {"ok": "green", "warning": "orange", "critical": "red", "unknown": "gray"}
THRESHOLD_COLOR = HUES[SEVERITY_COLORS["critical"]]


def severity_color(severity: str) -> str:
    """The colour name of an alert's ``severity`` (gray for one the rules do not use)."""
    return SEVERITY_COLORS.get(severity, "gray")


# A headline number is "warning" from this fraction of its threshold on.
WARNING_FRACTION = 0.8
_BASE_COLUMNS = ("timestamp", "value")
# Legends sit above the plot, clear of the x-axis date labels.
_LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0}


def label_columns(frame: pd.DataFrame) -> list[str]:
    """The label columns of a promql DataFrame: every column but timestamp and value."""
    return [c for c in frame.columns if c not in _BASE_COLUMNS]


def format_value(value: float | None, unit: Unit) -> str:
    """A human rendering of one number in its unit (``4.2%``, ``350 ms``, ``1.5 GiB``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit == "ratio":
        return f"{value * 100:.2f}%"
    if unit == "seconds":
        if abs(value) < 1:
            return f"{value * 1000:.0f} ms"
        if abs(value) < 120:
            return f"{value:.2f} s"
        if abs(value) < 7200:
            return f"{value / 60:.1f} min"
        return f"{value / 3600:.1f} h"
    if unit == "bytes":
        return format_bytes(value)
    if unit == "per_second":
        return f"{value:.3g}/s"
    return f"{value:.4g}"


def threshold_level(value: float | None, threshold: float | None) -> Level:
    """How a headline number stands against its alert threshold.

    ``critical`` at or above it, ``warning`` from WARNING_FRACTION of it, ``ok`` below,
    ``unknown`` without a value (or without a threshold, ``ok``).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    if threshold is None:
        return "ok"
    if value >= threshold:
        return "critical"
    if value >= threshold * WARNING_FRACTION:
        return "warning"
    return "ok"


def _series_name(key: object, columns: Sequence[str]) -> str:
    values = key if isinstance(key, tuple) else (key,)
    parts = [f"{col}={val}" for col, val in zip(columns, values, strict=False) if str(val) != ""]
    return ", ".join(parts) if parts else "value"


def series(
    frame: pd.DataFrame, by: Sequence[str] | None = None, *, name: str = "value"
) -> dict[str, pd.DataFrame]:
    """Split a promql DataFrame into named series (sorted by timestamp, NaN values dropped).

    ``by`` picks the label columns that name a series; rows sharing those labels and a
    timestamp are summed (e.g. request rate by status sums over routes). By default every
    label column names a series; a frame without labels is one series called ``name``.
    Raises ValueError when ``by`` names a missing column.
    """
    if frame.empty:
        return {}
    labels = label_columns(frame) if by is None else list(by)
    missing = [c for c in labels if c not in frame.columns]
    if missing:
        raise ValueError(f"no label column {', '.join(missing)} in {list(frame.columns)}")
    data = frame.dropna(subset=["value"])
    data = data[np.isfinite(data["value"].to_numpy(dtype=float))]
    if data.empty:
        return {}
    if not labels:
        single = data.groupby("timestamp", as_index=False)["value"].sum().sort_values("timestamp")
        return {name: single}
    result: dict[str, pd.DataFrame] = {}
    grouped = data.groupby([*labels, "timestamp"], as_index=False, dropna=False)["value"].sum()
    for key, part in grouped.groupby(labels if len(labels) > 1 else labels[0], dropna=False, sort=True):
        result[_series_name(key, labels)] = part[["timestamp", "value"]].sort_values("timestamp")
    return result


def latest_by(frame: pd.DataFrame, label: str) -> dict[str, float]:
    """The most recent finite value of each series named by ``label`` (e.g. each layer's
    current index size). Raises ValueError when the column is missing."""
    if frame.empty:
        return {}
    if label not in frame.columns:
        raise ValueError(f"no label column {label} in {list(frame.columns)}")
    data = frame[frame["value"].map(lambda v: math.isfinite(float(v)))]
    last = data.sort_values("timestamp").groupby(label, sort=True)["value"].last()
    return {str(key): float(value) for key, value in last.items()}


def y_range(values: Sequence[float], threshold: float | None = None) -> tuple[float, float]:
    """A y-axis range holding every value and the threshold, starting at zero (or below for
    negative data), with headroom on top so the threshold line is never on the edge."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if threshold is not None and math.isfinite(threshold):
        finite.append(float(threshold))
    if not finite:
        return (0.0, 1.0)
    low = min(0.0, min(finite))
    high = max(finite)
    if high <= low:
        high = low + (abs(low) or 1.0)
    return (low, high + (high - low) * 0.1)


def byte_ticks(low: float, high: float, most: int = 6) -> tuple[list[float], list[str]]:
    """Tick positions and labels for a bytes axis in binary units (KiB, MiB, GiB), so a
    1 GiB threshold sits on a "1 GiB" tick rather than near "1.07GB". At most ``most`` ticks."""
    span = max(high, abs(low), 1.0)
    unit = 1.0
    for size in (1024.0, 1024.0**2, 1024.0**3, 1024.0**4):
        if span >= size:
            unit = size
    names = {1.0: "B", 1024.0: "KiB", 1024.0**2: "MiB", 1024.0**3: "GiB", 1024.0**4: "TiB"}
    step = unit
    for factor in (0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500):
        step = factor * unit
        if (high - min(low, 0.0)) / step <= most:
            break
    first = math.floor(min(low, 0.0) / step)
    values = [i * step for i in range(first, math.floor(high / step) + 1)]
    labels = [f"{v / unit:g} {names[unit]}" for v in values]
    return values, labels


_AXIS_FORMATS: dict[str, dict[str, str]] = {
    "ratio": {"tickformat": ".1%"},
    "seconds": {"ticksuffix": " s"},
    "bytes": {},
    "per_second": {"ticksuffix": "/s"},
    "count": {},
}


def plotly_times(stamps: pd.Series) -> np.ndarray:
    """A timestamp column as naive-UTC datetime64 values: the same JSON plotly sends for the
    column itself (ISO text without an offset, read as UTC by the charts), built about four times
    faster, which counts on a dashboard of thirty series."""
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.to_numpy()


def time_series_figure(
    frame: pd.DataFrame,
    *,
    title: str,
    unit: Unit = "count",
    by: Sequence[str] | None = None,
    threshold: float | None = None,
    threshold_label: str | None = None,
    stacked: bool = False,
    name: str = "value",
    annotations: pd.DataFrame | None = None,
    window: tuple[object, object] | None = None,
) -> go.Figure:
    """A line chart of every series in ``frame`` with one legend entry per series.

    When ``threshold`` is given it is drawn as a dashed horizontal line across the whole
    time range, listed in the legend, and the y-range always includes it. A series without
    labels is called ``name`` in the legend. ``annotations`` (the engine's
    ``chart_annotations`` frame) adds operations as markers and alert intervals as shaded bands
    (see :func:`add_annotations`) inside ``window`` (the range asked for; default: the data's). Raises ValueError when ``by`` names a missing column.
    """
    figure = go.Figure()
    all_values: list[float] = []
    named = series(frame, by, name=name)
    for series_name, part in named.items():
        all_values.extend(part["value"].tolist())
        figure.add_trace(
            go.Scatter(
                x=plotly_times(part["timestamp"]),
                y=part["value"].to_numpy(dtype=float),
                name=series_name,
                mode="lines",
                showlegend=True,
                stackgroup="one" if stacked else None,
            )
        )
    if stacked and named:
        totals = pd.concat(named.values()).groupby("timestamp")["value"].sum()
        all_values.extend(totals.tolist())
    if threshold is not None:
        if named:
            stamps = pd.concat([part["timestamp"] for part in named.values()])
            x_bounds = [stamps.min(), stamps.max()]
        else:
            x_bounds = [None, None]
        label = threshold_label or f"alert threshold {format_value(threshold, unit)}"
        figure.add_trace(
            go.Scatter(
                x=x_bounds,
                y=[threshold, threshold],
                name=label,
                mode="lines",
                line={"color": THRESHOLD_COLOR, "dash": "dash", "width": 2},
                showlegend=True,
                hoverinfo="name",
            )
        )
    low, high = y_range(all_values, threshold)
    figure.update_layout(
        title={"text": title, "y": 0.98} if title else None,
        showlegend=True,
        legend=_LEGEND,
        margin={"l": 10, "r": 10, "t": 70 if title else 30, "b": 10},
        height=340,
        hovermode="x unified",
    )
    figure.update_yaxes(range=[low, high], rangemode="tozero", **_AXIS_FORMATS[unit])
    if unit == "bytes":
        values, labels = byte_ticks(low, high)
        figure.update_yaxes(tickvals=values, ticktext=labels)
    figure.update_xaxes(title=None)
    if annotations is not None and named:
        if window is None:
            stamps = pd.concat([part["timestamp"] for part in named.values()])
            window = (stamps.min(), stamps.max())
        add_annotations(figure, annotations, *window)
    return figure


OPERATION_COLOR = "#6a3d9a"
ALERT_BAND_COLOR = "rgba(214, 39, 40, 0.12)"


def add_annotations(figure: go.Figure, annotations: pd.DataFrame, start: object, end: object) -> None:
    """Draw the annotation rows overlapping ``[start, end]`` on ``figure``: each operation as a
    dotted vertical line with a marker whose hover text says what, who and the result (one
    legend entry, "operations"), each alert firing interval as a shaded band clipped to the
    range (one legend entry, "alert firing", hover text at the band's start)."""
    if annotations is None or annotations.empty:
        return
    low, high = pd.Timestamp(start), pd.Timestamp(end)
    ops = annotations[(annotations["kind"] == "operation") & annotations["start"].between(low, high)]
    if not ops.empty:
        for moment in ops["start"]:
            figure.add_shape(
                type="line", x0=moment, x1=moment, y0=0, y1=1, yref="paper",
                line={"color": OPERATION_COLOR, "dash": "dot", "width": 1}, layer="below",
            )  # fmt: skip
        figure.add_trace(
            go.Scatter(
                x=ops["start"], y=[1.0] * len(ops), yaxis="y2", name="operations", mode="markers",
                marker={"symbol": "triangle-down", "size": 10, "color": OPERATION_COLOR},
                hovertext=ops["text"], hoverinfo="text", showlegend=True,
            )
        )  # fmt: skip
    bands = annotations[annotations["kind"] == "alert"]
    bands = bands[(bands["start"] <= high) & (bands["end"].fillna(high) >= low)]
    if not bands.empty:
        for row in bands.itertuples(index=False):
            x0 = max(row.start, low)
            x1 = min(row.end if not pd.isna(row.end) else high, high)
            figure.add_shape(
                type="rect", x0=x0, x1=x1, y0=0, y1=1, yref="paper",
                fillcolor=ALERT_BAND_COLOR, line={"width": 0}, layer="below",
            )  # fmt: skip
        figure.add_trace(
            go.Scatter(
                x=[max(t, low) for t in bands["start"]], y=[0.0] * len(bands), yaxis="y2",
                name="alert firing", mode="markers",
                marker={"symbol": "square", "size": 8, "color": "rgba(214, 39, 40, 0.6)"},
                hovertext=bands["text"], hoverinfo="text", showlegend=True,
            )
        )  # fmt: skip
    figure.update_layout(
        yaxis2={"overlaying": "y", "range": [-0.02, 1.05], "visible": False, "fixedrange": True}
    )


def alert_timeline_figure(interval_frame: pd.DataFrame, start: object, end: object) -> go.Figure:
    """A timeline of alert firing intervals from the engine's ``intervals`` frame: one row per
    alert name, one bar per interval (clipped to ``[start, end]``; one still firing runs to
    ``end``), colored by severity, hover text with start, end and duration."""
    figure = go.Figure()
    low, high = pd.Timestamp(start), pd.Timestamp(end)
    if not interval_frame.empty:
        frame = interval_frame.copy()
        frame["bar_start"] = frame["start"].clip(lower=low)
        frame["bar_end"] = frame["end"].fillna(high).clip(upper=high)
        for severity, part in frame.groupby("severity", sort=True):
            milliseconds = (part["bar_end"] - part["bar_start"]).dt.total_seconds() * 1000
            text = [
                f"{row.alertname} ({row.severity or 'no severity'})<br>{row.start:%Y-%m-%d %H:%M:%S} → "
                + (f"{row.end:%Y-%m-%d %H:%M:%S}" if row.resolved else "still firing")
                + f"<br>{format_value(row.seconds, 'seconds')}"
                for row in part.itertuples(index=False)
            ]
            figure.add_trace(
                go.Bar(
                    x=milliseconds.clip(lower=1000), base=part["bar_start"], y=part["alertname"],
                    orientation="h", name=str(severity) or "no severity",
                    marker={"color": HUES[severity_color(str(severity))]},
                    hovertext=text, hoverinfo="text", showlegend=True,
                )
            )  # fmt: skip
    rows = max(1, interval_frame["alertname"].nunique() if not interval_frame.empty else 1)
    figure.update_layout(
        barmode="overlay",
        showlegend=True,
        legend=_LEGEND,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        height=max(220, 60 + 28 * rows),
    )
    figure.update_xaxes(type="date", range=[low, high])
    figure.update_yaxes(autorange="reversed", type="category")
    return figure


def to_csv(frame: pd.DataFrame) -> bytes:
    """The DataFrame as UTF-8 CSV bytes (timestamps in ISO 8601 UTC), for a download button."""
    return frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ").encode("utf-8")


def growth_figure(rows: Sequence[dict], *, title: str = "Documents added per day") -> go.Figure:
    """A stacked bar chart of documents added per day, one legend entry per layer, from
    ``MemoryStore.growth()`` rows (``day``, ``layer``, ``documents``)."""
    figure = go.Figure()
    frame = pd.DataFrame(list(rows), columns=["day", "layer", "documents"])
    for layer, part in frame.groupby("layer", sort=True):
        part = part.sort_values("day")
        figure.add_trace(go.Bar(x=part["day"], y=part["documents"], name=str(layer), showlegend=True))
    figure.update_layout(
        title={"text": title},
        barmode="stack",
        showlegend=True,
        legend=_LEGEND,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        height=340,
    )
    figure.update_yaxes(rangemode="tozero")
    return figure


def size_cap_figure(
    sizes: Mapping[str, float],
    caps: Mapping[str, float | None],
    *,
    title: str = "Index size and retention caps",
) -> go.Figure:
    """Each layer's index bytes as a bar, and each layer's ``max_bytes`` (where set) drawn as a
    dashed line across its bar, so the distance to the cap reads at a glance."""
    layers = list(sizes)
    figure = go.Figure()
    figure.add_trace(
        go.Bar(x=layers, y=[sizes[layer] for layer in layers], name="index size", showlegend=True)
    )
    capped = [(position, layer, caps.get(layer)) for position, layer in enumerate(layers) if caps.get(layer)]
    for number, (position, layer, cap) in enumerate(capped):
        figure.add_trace(
            go.Scatter(
                x=[position - 0.45, position + 0.45],
                y=[cap, cap],
                xaxis="x2",
                mode="lines",
                line={"color": THRESHOLD_COLOR, "dash": "dash", "width": 3},
                name="max_bytes",
                legendgroup="max_bytes",
                showlegend=number == 0,
                hovertemplate=f"{layer} max_bytes: {format_value(cap, 'bytes')}<extra></extra>",
            )
        )
    values = [float(v) for v in sizes.values()] + [float(c) for _, _, c in capped if c is not None]
    low, high = y_range(values)
    ticks, labels = byte_ticks(low, high)
    figure.update_layout(
        title={"text": title},
        showlegend=True,
        legend=_LEGEND,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        height=340,
        xaxis2={"overlaying": "x", "range": [-0.5, len(layers) - 0.5], "visible": False},
    )
    figure.update_yaxes(range=[low, high], tickvals=ticks, ticktext=labels)
    return figure


EVIDENCE_UNITS = ("ratio", "seconds", "bytes", "per_second", "count")


def evidence_figure(record: Mapping[str, object], firing_at: object | None = None) -> go.Figure | None:
    """The chart of one series a diagnosis gathered (its summary's ``series`` item: ``title``,
    ``unit``, ``labels``, ``points``), the alert's firing time marked by a dashed red line; None
    when the record holds no point."""
    points = record.get("points")
    if not isinstance(points, list) or not points:
        return None
    frame = pd.DataFrame(points)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    labels = [str(label) for label in record.get("labels") or [] if str(label) in frame.columns]  # type: ignore[attr-defined]
    unit = str(record.get("unit") or "count")
    figure = time_series_figure(
        frame,
        title=str(record.get("title") or record.get("name") or ""),
        unit=unit if unit in EVIDENCE_UNITS else "count",  # type: ignore[arg-type]
        by=labels or None,
        name=str(record.get("name") or "value"),
    )
    if firing_at is not None:
        moment = pd.Timestamp(firing_at)
        figure.add_vline(x=moment.timestamp() * 1000, line_dash="dash", line_color=THRESHOLD_COLOR)
    figure.update_layout(height=280)
    return figure
