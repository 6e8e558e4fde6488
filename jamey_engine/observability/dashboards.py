"""What the dashboards draw: each chart's PromQL method, title, unit and alert threshold, and which
chart shows what an alert watches. The workbench and the benchmarks draw from this one list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from jamey_engine.observability import promql

if TYPE_CHECKING:
    import pandas as pd

Unit = Literal["ratio", "seconds", "bytes", "per_second", "count"]


@dataclass(frozen=True)
class ChartSpec:
    """One dashboard chart: the ``PromQuery`` method (and query_link name) it draws, its
    title and unit, the label columns naming its series, and its alert threshold if any."""

    name: str
    title: str
    unit: Unit
    by: tuple[str, ...] | None = None
    threshold: float | None = None
    threshold_label: str | None = None
    stacked: bool = False
    series_name: str = "value"  # the legend entry of a series without labels


def chart_specs() -> tuple[ChartSpec, ...]:
    """The dashboard charts in display order, thresholds taken from the alert rules' constants."""

    return (
        ChartSpec(
            "error_rate",
            "Error rate (5xx share of requests)",
            "ratio",
            threshold=promql.ERROR_RATE_THRESHOLD,
            threshold_label="error-rate alert threshold",
            series_name="5xx share",
        ),
        ChartSpec(
            "latency_quantiles",
            "Latency p50, p95, p99",
            "seconds",
            by=("quantile",),
            threshold=promql.P95_LATENCY_THRESHOLD,
            threshold_label="p95 latency alert threshold",
        ),
        ChartSpec("request_rate", "Request rate by status", "per_second", by=("status",)),
        ChartSpec("rate_limited", "Rate-limit rejections", "per_second"),
        ChartSpec("backup_counts", "Backups: successes and failures", "count"),
        ChartSpec("backup_duration", "Backup duration", "seconds", series_name="last backup's duration"),
        ChartSpec("backup_size", "Backup size", "bytes", series_name="last backup's size"),
        ChartSpec(
            "index_size",
            "Memory index size by layer",
            "bytes",
            by=("layer",),
            threshold=promql.INDEX_SIZE_THRESHOLD,
            threshold_label="per-layer index size alert threshold",
        ),
    )


_ALERT_CHARTS: dict[str, str] = {
    "JameyServiceDown": "request_rate",
    "JameyHighErrorRate": "error_rate",
    "JameyHighLatency": "latency_quantiles",
    "JameyRateLimitSurge": "rate_limited",
    "JameyMemoryIndexTooLarge": "index_size",
    "JameyBackupFailed": "backup_counts",
    "JameyBackupTooOld": "backup_counts",
    "JameyBackupNeverSucceeded": "backup_counts",
}
_ALERT_WORDS: tuple[tuple[str, str], ...] = (
    ("errorrate", "error_rate"),
    ("latency", "latency_quantiles"),
    ("ratelimit", "rate_limited"),
    ("backup", "backup_counts"),
    ("restore", "backup_counts"),
    ("index", "index_size"),
    ("request", "request_rate"),
)


def chart_for_alert(alertname: str, annotations: dict[str, Any] | None = None) -> str | None:
    """The dashboard chart that shows what an alert watches: the alert's ``dashboard``
    annotation when it names a chart, else a match on words in its name; None if none fits."""
    names = {spec.name for spec in chart_specs()}
    wanted = str((annotations or {}).get("dashboard", "")).strip()
    if wanted in names:
        return wanted
    if alertname in _ALERT_CHARTS:
        return _ALERT_CHARTS[alertname]
    flat = alertname.lower().replace("-", "").replace("_", "")
    for word, chart in _ALERT_WORDS:
        if word in flat:
            return chart
    return None


def annotations_for_chart(annotations: pd.DataFrame, chart: str) -> pd.DataFrame:
    """The ``chart_annotations`` frame as ``chart`` draws it: every operation marker, and only the
    firing bands of the alerts that concern this chart (:func:`chart_for_alert`), not every
    alert on every chart."""
    if annotations.empty or "alertname" not in annotations.columns:
        return annotations
    alert = annotations["kind"] == "alert"
    concerns = annotations["alertname"].map(lambda name: chart_for_alert(str(name)) == chart)
    return annotations[~alert | concerns].reset_index(drop=True)
