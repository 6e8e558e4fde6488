"""Prometheus HTTP API answers as Python values: the error text of a refused query, and vector
or matrix results as tidy pandas DataFrames. Used by ``jamey_engine.observability.promql``."""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def parse_client_error(message: str) -> tuple[int, str]:
    """(status, Prometheus' error text) from prometheus-api-client's exception message."""
    match = re.match(r"HTTP Status Code (\d+) \((.*)\)$", message, re.DOTALL)
    if not match:
        return 0, message
    status, body = int(match.group(1)), match.group(2)
    try:
        raw = ast.literal_eval(body)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    except (ValueError, SyntaxError):
        text = body
    try:
        payload = json.loads(text)
        return status, str(payload.get("error") or text)
    except (ValueError, AttributeError):
        return status, text.strip()


def to_float(value: object) -> float:
    """``float(value)``, or NaN when it is not a number (Prometheus sends values as strings)."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _numbers(column: Sequence[object]) -> np.ndarray:
    """Prometheus' sample values (strings such as "1.5", "NaN", "+Inf") as float64."""
    try:
        return np.asarray(column, dtype=np.float64)
    except (TypeError, ValueError):  # something that is not a number: NaN, one by one
        return np.fromiter((to_float(item) for item in column), dtype=np.float64, count=len(column))


def tidy(result: Sequence[dict[str, Any]], labels: tuple[str, ...]) -> pd.DataFrame:
    """Prometheus' vector or matrix result as rows (timestamp, value, *labels); non-finite
    values (0/0 ratios, quantiles without traffic) are dropped."""
    timestamps: list[np.ndarray] = []
    values: list[np.ndarray] = []
    label_values: dict[str, list[np.ndarray]] = {label: [] for label in labels}
    for series in result:
        metric = series.get("metric", {})
        points = series.get("values") or ([series["value"]] if "value" in series else [])
        if not points:
            continue
        stamps = _numbers([point[0] for point in points])
        numbers = _numbers([point[1] for point in points])
        finite = np.isfinite(numbers)
        timestamps.append(stamps[finite])
        values.append(numbers[finite])
        for label in labels:
            label_values[label].append(np.full(int(finite.sum()), str(metric.get(label, "")), dtype=object))

    def joined(parts: list[np.ndarray], dtype: type | str) -> np.ndarray:
        return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(pd.Series(joined(timestamps, "float64")), unit="s", utc=True),
            "value": pd.Series(joined(values, "float64"), dtype="float64"),
            **{
                label: pd.Series(joined(parts, object), dtype="object")
                for label, parts in label_values.items()
            },
        }
    )
    return frame.sort_values([*labels, "timestamp"], ignore_index=True)
