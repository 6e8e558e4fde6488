"""The named series: each chart's and card's PromQL, and the step and window policy of a range.

What each series means is declared once here (``SERIES``): its expression template, the labels
that name its lines and a description; ``PromQuery`` (``promql.py``) runs them against Prometheus
and the dashboards, the diagnosis and the notebooks pick them by name.
- a range never asks for more than ``MAX_POINTS`` points per series (``choose_step``);
  Prometheus refuses over 11,000;
- rates use a window of at least 5 minutes and at least one step, so a long range at a coarse
  step still counts every request (what Grafana calls ``$__rate_interval``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from jamey_engine.durations import as_utc
from jamey_engine.errors import InvalidInput

#: At most this many points per series in a range query.
MAX_POINTS = 1000
#: Steps ``choose_step`` picks from, in seconds: round numbers, so cached ranges line up.
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
#: The shortest window a rate is taken over.
DEFAULT_RATE_WINDOW = timedelta(minutes=5)
#: Backups are rare: count them over at least an hour.
BACKUP_COUNT_WINDOW = timedelta(hours=1)
QUANTILES = ("0.5", "0.95", "0.99")


@dataclass(frozen=True)
class SeriesSpec:
    """One named query: its PromQL (built from a selector and a rate window) and label columns."""

    name: str
    description: str
    labels: tuple[str, ...]
    build: Callable[[str, str, str], str]  # (selector, rate window, count window) -> PromQL


def _error_rate(sel: str, w: str, _cw: str) -> str:
    api = f'{{{sel},route!="/metrics"}}'
    errors = f'{{{sel},route!="/metrics",status=~"5.."}}'
    return (
        f"sum(rate(http_requests_total{errors}[{w}])) / sum(rate(http_requests_total{api}[{w}]))"
        f" or sum(rate(http_requests_total{api}[{w}])) * 0"
    )


def _latency_quantiles(sel: str, w: str, _cw: str) -> str:
    buckets = f'sum by (le) (rate(http_request_duration_seconds_bucket{{{sel},route!="/metrics"}}[{w}]))'
    return " or ".join(
        f'label_replace(histogram_quantile({q}, {buckets}), "quantile", "{q}", "", "")' for q in QUANTILES
    )


SERIES: dict[str, SeriesSpec] = {
    spec.name: spec
    for spec in (
        SeriesSpec("error_rate", "Share of API requests answered 5xx", (), _error_rate),
        SeriesSpec(
            "latency_quantiles", "API latency p50/p95/p99 in seconds", ("quantile",), _latency_quantiles
        ),
        SeriesSpec(
            "request_rate",
            "Requests per second by route and status",
            ("route", "status"),
            lambda sel, w, _cw: f"sum by (route, status) (rate(http_requests_total{{{sel}}}[{w}]))",
        ),
        SeriesSpec(
            "backup_counts",
            "Backups by outcome in the preceding window (at least an hour)",
            ("status",),
            lambda sel, _w, cw: f"sum by (status) (increase(backup_operations_total{{{sel}}}[{cw}]))",
        ),
        SeriesSpec(
            "backup_duration",
            "Duration of the last backup in seconds",
            (),
            lambda sel, _w, _cw: f"max(backup_duration_seconds{{{sel}}})",
        ),
        SeriesSpec(
            "backup_size",
            "Size of the last backup archive in bytes",
            (),
            lambda sel, _w, _cw: f"max(backup_size_bytes{{{sel}}})",
        ),
        SeriesSpec(
            "backup_age",
            "Seconds since the last successful backup",
            (),
            lambda sel, _w, _cw: f"time() - max(backup_last_success_timestamp_seconds{{{sel}}})",
        ),
        SeriesSpec(
            "index_size",
            "Bytes on disk of each memory layer's index",
            ("layer",),
            lambda sel, _w, _cw: f"sum by (layer) (memory_index_size_bytes{{{sel}}})",
        ),
        SeriesSpec(
            "total_index_size",
            "Bytes on disk of all memory indexes",
            (),
            lambda sel, _w, _cw: f"sum(memory_index_size_bytes{{{sel}}})",
        ),
        SeriesSpec(
            "index_documents",
            "Documents in each memory layer",
            ("layer",),
            lambda sel, _w, _cw: f"sum by (layer) (memory_documents{{{sel}}})",
        ),
        SeriesSpec(
            "rate_limited",
            "Requests refused by a rate limit per second, by scope",
            ("scope",),
            lambda sel, w, _cw: f"sum by (scope) (rate(rate_limited_requests_total{{{sel}}}[{w}]))",
        ),
    )
}


def choose_step(start: datetime, end: datetime) -> timedelta:
    """The smallest step in ``STEPS`` that keeps ``[start, end]`` within ``MAX_POINTS`` points.

    Raises InvalidInput when ``end`` is not after ``start``.
    """
    seconds = (utc(end, "end") - utc(start, "start")).total_seconds()
    if seconds <= 0:
        raise InvalidInput(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
    for step in STEPS:
        if math.floor(seconds / step) + 1 <= MAX_POINTS:
            return timedelta(seconds=step)
    return timedelta(seconds=math.ceil(seconds / (MAX_POINTS - 1)))


def promql_duration(delta: timedelta) -> str:
    """A Prometheus duration (``5m``, ``1h``, ``90s``...) for a whole number of seconds."""
    seconds = max(1, round(delta.total_seconds()))
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def utc(value: datetime, field: str) -> datetime:
    """``value`` in UTC (a naive one is read as UTC); InvalidInput naming ``field`` for a non-datetime."""
    if not isinstance(value, datetime):
        raise InvalidInput(f"{field} must be a datetime, got {value!r}")
    return as_utc(value)
