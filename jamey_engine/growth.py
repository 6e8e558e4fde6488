"""Growth analysis of the memory indexes: history per day, daily growth rates, and when 1 GiB is crossed.

Pure pandas functions: they take rows and frames and return frames, so the notebook
(``notebooks/memory_growth.ipynb``), the workbench and tests share one set of rules.

Frames used here:

- *history*: one row per (day, layer) with ``day`` (a UTC midnight ``Timestamp``), ``layer`` and
  one or more value columns (``documents``, ``bytes``); the pseudo-layer ``total`` may be added
  with :func:`with_total`.
- *current*: one row per layer with ``layer``, ``documents`` and ``bytes`` (the sizes now).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from jamey_engine import thresholds
from jamey_engine.errors import InvalidInput
from jamey_engine.sizes import format_bytes

GIB = thresholds.GIB
#: The index-size alert fires above this many bytes.
ALERT_THRESHOLD_BYTES = thresholds.INDEX_SIZE_WARNING_BYTES
TOTAL = "total"

_HISTORY_COLUMNS = ["day", "layer", "added", "documents", "bytes"]
_PROJECTION_COLUMNS = ["layer", "bytes", "bytes_per_day", "days_left", "crosses_on", "status"]


def utc_day(value: date | datetime | pd.Timestamp) -> pd.Timestamp:
    """The UTC midnight starting the day of a date, a datetime or a Timestamp (naive means UTC)."""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return stamp.normalize()


def current_frame(sizes: Any) -> pd.DataFrame:
    """The current documents and bytes per layer from a ``memory.Sizes`` (anything with ``.layers``).

    Each value of ``sizes.layers`` needs ``.layer``, ``.documents`` and ``.bytes``.
    """
    rows = [
        {"layer": size.layer, "documents": int(size.documents), "bytes": int(size.bytes)}
        for size in sizes.layers.values()
    ]
    return pd.DataFrame(rows, columns=["layer", "documents", "bytes"])


def index_history(
    growth_rows: Iterable[Mapping[str, Any]],
    current: pd.DataFrame,
    *,
    days: int,
    today: date | datetime | None = None,
) -> pd.DataFrame:
    """Documents and bytes per layer at the end of each of the last ``days`` days, from the index.

    ``growth_rows`` are ``MemoryStore.growth(days)`` rows (``day``, ``layer``, ``documents`` added
    that day); ``current`` holds each layer's documents and bytes now. Documents at the end of a
    day are the documents now minus those added after it; bytes are estimated from the layer's
    bytes per document now (the index does not keep its size history; Prometheus does).
    Returns columns day, layer, added, documents, bytes; one row per layer and day, oldest first.
    Raises InvalidInput when ``days`` is not a positive whole number.
    """
    if not isinstance(days, int) or isinstance(days, bool) or days <= 0:
        raise InvalidInput(f"days {days!r} must be a whole number above zero")
    end = utc_day(today if today is not None else datetime.now(UTC))
    calendar = pd.date_range(end - pd.Timedelta(days=days - 1), end, freq="D")
    added = pd.DataFrame(list(growth_rows), columns=["day", "layer", "documents"])
    if not added.empty:
        added["day"] = [utc_day(value) for value in added["day"]]
        added = added.groupby(["layer", "day"], as_index=False)["documents"].sum()
    frames = []
    for row in current.itertuples(index=False):
        layer_added = (
            added[added["layer"] == row.layer].set_index("day")["documents"]
            if not added.empty
            else pd.Series(dtype="int64", index=pd.DatetimeIndex([], tz=UTC))
        )
        per_day = layer_added.reindex(calendar, fill_value=0).astype("int64")
        # Documents added after each day's end: a reverse cumulative sum, shifted by one day,
        # plus anything stamped after the window (clock skew, future timestamps).
        later = int(layer_added[layer_added.index > end].sum())
        after_day = per_day[::-1].cumsum()[::-1].shift(-1, fill_value=0) + later
        documents = (int(row.documents) - after_day).clip(lower=0)
        bytes_per_document = row.bytes / row.documents if row.documents else 0.0
        frames.append(
            pd.DataFrame(
                {
                    "day": calendar,
                    "layer": row.layer,
                    "added": per_day.to_numpy(),
                    "documents": documents.to_numpy().astype("int64"),
                    "bytes": np.round(documents.to_numpy() * bytes_per_document).astype("int64"),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=_HISTORY_COLUMNS)
    return pd.concat(frames, ignore_index=True)[_HISTORY_COLUMNS]


def prometheus_daily(frame: pd.DataFrame, *, value: str = "bytes") -> pd.DataFrame:
    """Reduce a PromQuery range frame (timestamp, value, layer) to the last sample per UTC day and layer.

    Returns columns day, layer and ``value`` (the value column renamed), oldest first.
    An empty frame gives an empty result.
    """
    if frame.empty:
        return pd.DataFrame(columns=["day", "layer", value])
    data = frame[["timestamp", "layer", "value"]].copy()
    data["timestamp"] = pd.to_datetime(data["timestamp"], utc=True)
    data["day"] = data["timestamp"].dt.normalize()
    last = data.sort_values("timestamp").groupby(["day", "layer"], as_index=False).last()
    return last[["day", "layer", "value"]].rename(columns={"value": value}).reset_index(drop=True)


def with_total(
    history: pd.DataFrame, columns: Iterable[str] = ("added", "documents", "bytes")
) -> pd.DataFrame:
    """``history`` plus one ``total`` row per day summing ``columns`` over the layers.

    A day missing a layer sums what is there. A ``total`` already present is replaced.
    """
    cols = [c for c in columns if c in history.columns]
    layers = history[history["layer"] != TOTAL]
    if layers.empty:
        return layers.copy()
    total = layers.groupby("day", as_index=False)[cols].sum()
    total["layer"] = TOTAL
    combined = pd.concat([layers, total], ignore_index=True)
    order = combined["layer"].map(lambda layer: layer_sort_key(str(layer)))
    combined = combined.assign(_order=order).sort_values(["_order", "day"], kind="stable")
    return combined.drop(columns="_order").reset_index(drop=True)


def daily_rates(history: pd.DataFrame, column: str) -> pd.Series:
    """The growth per day of ``column`` for each layer: the least-squares slope over the days.

    A fitted slope, not the last day's difference, so one bursty day does not dominate.
    A layer with fewer than two days of history has rate NaN (unknown). Returns a Series
    indexed by layer.
    """
    rates: dict[str, float] = {}
    for layer, group in history.groupby("layer", sort=True):
        group = group.dropna(subset=[column])
        if group["day"].nunique() < 2:
            rates[str(layer)] = math.nan
            continue
        x = (pd.to_datetime(group["day"], utc=True) - pd.Timestamp(0, tz=UTC)) / pd.Timedelta(days=1)
        slope = np.polyfit(x.to_numpy(dtype=float), group[column].to_numpy(dtype=float), 1)[0]
        rates[str(layer)] = float(slope)
    return pd.Series(rates, name=f"{column}_per_day", dtype=float)


def growth_rates(history: pd.DataFrame) -> pd.DataFrame:
    """Documents and bytes added per day, per layer (and ``total`` when present in ``history``).

    Columns: layer, documents_per_day, bytes_per_day (NaN when under two days of history).
    """
    frame = pd.DataFrame({"layer": sorted(history["layer"].unique(), key=layer_sort_key)})
    for column in ("documents", "bytes"):
        if column in history.columns:
            rates = daily_rates(history, column)
            frame[f"{column}_per_day"] = frame["layer"].map(rates)
    return frame.reset_index(drop=True)


def layer_sort_key(layer: str) -> str:
    """Sorts the memory layers in their usual order, then any other name, then ``total``."""
    from jamey_engine.memory.layers import LAYERS

    if layer in LAYERS:
        return f"0{LAYERS.index(layer)}"
    return f"2{layer}" if layer == TOTAL else f"1{layer}"


def project_crossing(
    current_bytes: Mapping[str, float],
    bytes_per_day: Mapping[str, float],
    *,
    today: date | datetime | None = None,
    threshold: float = ALERT_THRESHOLD_BYTES,
    horizon_days: int = 3650,
) -> pd.DataFrame:
    """When each layer (and ``total`` when given) crosses ``threshold`` bytes at its current rate.

    Linear projection: days_left = (threshold - bytes) / bytes_per_day. Status is one of
    ``over`` (already above: the alert fires now), ``crosses`` (a date within ``horizon_days``),
    ``not growing`` (rate zero or negative), ``beyond horizon``, or ``unknown`` (no rate).
    Returns columns layer, bytes, bytes_per_day, days_left, crosses_on (date or None), status.
    Raises InvalidInput when ``threshold`` is not above zero.
    """
    if not threshold > 0:
        raise InvalidInput(f"threshold {threshold!r} must be above zero")
    start = utc_day(today if today is not None else datetime.now(UTC)).date()
    rows = []
    for layer in sorted(current_bytes, key=layer_sort_key):
        size = float(current_bytes[layer])
        rate = float(bytes_per_day.get(layer, math.nan))
        days_left: float | None = None
        crosses_on: date | None = None
        if size > threshold:
            status, days_left, crosses_on = "over", 0.0, start
        elif math.isnan(rate):
            status = "unknown"
        elif rate <= 0:
            status = "not growing"
        else:
            days_left = (threshold - size) / rate
            if days_left > horizon_days:
                status = "beyond horizon"
            else:
                status = "crosses"
                crosses_on = start + timedelta(days=math.ceil(days_left))
        rows.append(
            {
                "layer": layer,
                "bytes": int(size),
                "bytes_per_day": rate,
                "days_left": days_left,
                "crosses_on": crosses_on,
                "status": status,
            }
        )
    return pd.DataFrame(rows, columns=_PROJECTION_COLUMNS)


def describe_projection(projection: pd.DataFrame, *, threshold: float = ALERT_THRESHOLD_BYTES) -> list[str]:
    """One plain sentence per row of :func:`project_crossing`, for a reader."""
    limit = format_bytes(threshold)
    lines = []
    for row in projection.itertuples(index=False):
        size = format_bytes(row.bytes)
        if row.status == "over":
            lines.append(f"{row.layer}: {size} is already over {limit}; the size alert fires now.")
        elif row.status == "crosses":
            lines.append(
                f"{row.layer}: {size}, growing {format_bytes(row.bytes_per_day)}/day, "
                f"crosses {limit} around {row.crosses_on} (in about {math.ceil(row.days_left)} days)."
            )
        elif row.status == "not growing":
            lines.append(f"{row.layer}: {size}, not growing; it will not cross {limit} at this rate.")
        elif row.status == "beyond horizon":
            lines.append(
                f"{row.layer}: {size}, growing {format_bytes(row.bytes_per_day)}/day; "
                f"{limit} is more than ten years away."
            )
        else:
            lines.append(f"{row.layer}: {size}; too little history to estimate a rate.")
    return lines


def project_with_policies(
    current_bytes: Mapping[str, float],
    bytes_per_day: Mapping[str, float],
    policies: Mapping[str, tuple[float | None, float | None]],
    *,
    days: int,
    today: date | datetime | None = None,
) -> pd.DataFrame:
    """Each layer's projected bytes per day for ``days`` days, without and with its retention policy.

    ``policies[layer]`` is (max_age in days, max_bytes), None where unset. Without a policy a
    layer grows at its rate. With one, a run each day: an age limit holds the layer near
    ``rate * max_age`` (a day's worth of memories per day kept), a size cap cuts it to 90% of
    the cap whenever it passes the cap. Returns columns day, layer, without, with (bytes);
    a layer with an unknown rate is projected flat. Raises InvalidInput unless ``days`` >= 1.
    """
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise InvalidInput(f"days {days!r} must be a whole number above zero")
    start = utc_day(today if today is not None else datetime.now(UTC))
    rows = []
    for layer in sorted(current_bytes, key=layer_sort_key):
        rate = float(bytes_per_day.get(layer, math.nan))
        rate = 0.0 if math.isnan(rate) else max(rate, 0.0)
        max_age, max_bytes = policies.get(layer, (None, None))
        without = with_policy = float(current_bytes[layer])
        for offset in range(days + 1):
            if offset:
                without += rate
                with_policy += rate
            if max_age is not None and rate > 0:
                with_policy = min(with_policy, rate * max_age)
            if max_bytes is not None and with_policy > max_bytes:
                with_policy = 0.9 * max_bytes
            rows.append(
                {
                    "day": start + pd.Timedelta(days=offset),
                    "layer": layer,
                    "without": without,
                    "with": with_policy,
                }
            )
    return pd.DataFrame(rows, columns=["day", "layer", "without", "with"])


def describe_policy_projection(
    projection: pd.DataFrame, *, threshold: float = ALERT_THRESHOLD_BYTES
) -> list[str]:
    """One sentence per layer: its largest projected size without and with its policy, against the alert."""
    limit = format_bytes(threshold)
    lines = []
    for layer, part in projection.groupby("layer", sort=False):
        most_without, most_with = float(part["without"].max()), float(part["with"].max())
        if most_with < most_without:
            verdict = "never crosses" if most_with <= threshold else "still crosses"
            lines.append(
                f"{layer}: up to {format_bytes(most_without)} without its policy, {format_bytes(most_with)} "
                f"with it; it {verdict} the {limit} alert."
            )
        else:
            lines.append(
                f"{layer}: up to {format_bytes(most_without)}; its policy (if any) removes nothing here."
            )
    return lines
