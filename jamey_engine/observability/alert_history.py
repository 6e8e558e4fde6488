"""Alert history: what the notifications Alertmanager delivered tell.

- :func:`parse_webhook` (in :mod:`.webhook`) checks an Alertmanager webhook payload (version 4)
  and raises InvalidInput naming the first bad field; :data:`WEBHOOK_SCHEMA` states exactly what
  it accepts (the webhook route publishes it as its OpenAPI request body).
- :func:`store_notifications`, :func:`prune_history` and :func:`notification_counts` (in
  :mod:`.alert_store`) write each notification once and keep JAMEY_ALERT_HISTORY_DAYS days.
- Both are re-exported here, so that a caller of the alert history imports one module.
- Every query is bounded by its range and by MAX_ROWS rows.
- :func:`history_frame` (the table, with filters), :func:`intervals` (one firing interval per
  alert instance: start, end, resolved) and :func:`resolve_stats` (per alert name: how often it
  fired, mean and longest time to resolve) are what the Alerts page, the CLI and the notebooks
  show; they never open a second definition of "an interval".
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, cast

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Table

from jamey_engine.db import Database
from jamey_engine.durations import as_utc, utcnow
from jamey_engine.models import AlertNotification
from jamey_engine.observability.alert_store import PRUNE_EVERY_SECONDS as PRUNE_EVERY_SECONDS
from jamey_engine.observability.alert_store import notification_counts as notification_counts
from jamey_engine.observability.alert_store import prune_history as prune_history
from jamey_engine.observability.alert_store import store_notifications as store_notifications
from jamey_engine.observability.webhook import ENDS_PATTERN as ENDS_PATTERN
from jamey_engine.observability.webhook import MAX_ALERTS as MAX_ALERTS
from jamey_engine.observability.webhook import MOMENT_PATTERN as MOMENT_PATTERN
from jamey_engine.observability.webhook import WEBHOOK_SCHEMA as WEBHOOK_SCHEMA
from jamey_engine.observability.webhook import Notification as Notification
from jamey_engine.observability.webhook import parse_webhook as parse_webhook

_TABLE = cast(Table, AlertNotification.__table__)

#: Most rows one history query reads (the newest are kept).
MAX_ROWS = 50_000
#: How far before a range an alert still firing into it may have started (the default history).
DEFAULT_LOOKBACK = timedelta(days=90)

HISTORY_COLUMNS = [
    "received_at",
    "alertname",
    "severity",
    "layer",
    "status",
    "starts_at",
    "ends_at",
    "fingerprint",
    "summary",
    "receiver",
    "diagnosis_run",
]
#: ``diagnosis_run`` while the run is being started (runbooks.auto_diagnosis); shown as none.
DIAGNOSIS_STARTING = "starting"
INTERVAL_COLUMNS = ["alertname", "severity", "layer", "fingerprint", "start", "end", "resolved", "seconds"]
STATS_COLUMNS = ["alertname", "fired", "resolved", "mean_resolve_seconds", "longest_resolve_seconds"]


def history_frame(
    db: Database,
    since: datetime,
    until: datetime | None = None,
    *,
    alertname: str | None = None,
    severity: str | None = None,
    layer: str | None = None,
    limit: int = MAX_ROWS,
) -> pd.DataFrame:
    """Notifications received in ``[since, until]`` (until: now), newest first, optionally of one
    alert name, severity or layer; columns HISTORY_COLUMNS (times UTC; ``diagnosis_run`` is the
    id of the diagnosis run a firing row started, or None), at most ``limit`` rows (never more
    than MAX_ROWS)."""
    table = _TABLE
    query = sa.select(
        table.c.received_at, table.c.alertname, table.c.severity, table.c.layer, table.c.status,
        table.c.starts_at, table.c.ends_at, table.c.fingerprint, table.c.annotations, table.c.receiver,
        table.c.diagnosis_run,
    ).where(table.c.received_at >= as_utc(since))  # fmt: skip
    if until is not None:
        query = query.where(table.c.received_at <= as_utc(until))
    for column, value in (("alertname", alertname), ("severity", severity), ("layer", layer)):
        if value:
            query = query.where(table.c[column] == value)
    query = query.order_by(table.c.received_at.desc(), table.c.id.desc()).limit(max(0, min(limit, MAX_ROWS)))
    with db.connect() as conn:
        rows = conn.execute(query).all()
    records = []
    for row in rows:
        notes = json.loads(row.annotations or "{}")
        records.append(
            {
                "received_at": as_utc(row.received_at),
                "alertname": row.alertname,
                "severity": row.severity or "",
                "layer": row.layer or "",
                "status": row.status,
                "starts_at": as_utc(row.starts_at),
                "ends_at": as_utc(row.ends_at),
                "fingerprint": row.fingerprint,
                "summary": str(notes.get("summary", "")),
                "receiver": row.receiver or "",
                "diagnosis_run": None if row.diagnosis_run == DIAGNOSIS_STARTING else row.diagnosis_run,
            }
        )
    frame = pd.DataFrame.from_records(records, columns=HISTORY_COLUMNS)
    for column in ("received_at", "starts_at", "ends_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def intervals(
    db: Database,
    since: datetime,
    until: datetime | None = None,
    *,
    alertname: str | None = None,
    severity: str | None = None,
    layer: str | None = None,
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> pd.DataFrame:
    """One row per firing interval (an alert instance: fingerprint and start) that overlaps
    ``[since, until]``: ``start``, ``end`` (its resolution, or NaT while still firing),
    ``resolved`` and ``seconds`` (to resolution, or so far up to ``until``). Columns
    INTERVAL_COLUMNS, ordered by start.

    Reads only rows of the range: started or ended in it, or firing into it having started at
    most ``lookback`` before it; at most MAX_ROWS of them, the latest starts first."""
    end_of_range = as_utc(until) or utcnow()
    start_of_range = as_utc(since)
    assert start_of_range is not None
    table = _TABLE
    resolved = table.alias("resolved")
    ended_before = (
        sa.select(resolved.c.id)
        .where(resolved.c.fingerprint == table.c.fingerprint, resolved.c.starts_at == table.c.starts_at)
        .where(resolved.c.status == "resolved", resolved.c.ends_at < start_of_range)
    )
    query = sa.select(
        table.c.fingerprint, table.c.starts_at, table.c.status, table.c.ends_at,
        table.c.alertname, table.c.severity, table.c.layer,
    ).where(
        table.c.starts_at <= end_of_range,
        sa.or_(
            table.c.starts_at >= start_of_range,  # started in the range
            sa.and_(table.c.status == "resolved", table.c.ends_at >= start_of_range),  # ended in it
            # started before it and firing into it: no resolution before the range's start, and
            # no older than the history keeps (``lookback``)
            sa.and_(
                table.c.status == "firing",
                table.c.starts_at >= start_of_range - lookback,
                ~sa.exists(ended_before),
            ),
        ),
    )  # fmt: skip
    for column, value in (("alertname", alertname), ("severity", severity), ("layer", layer)):
        if value:
            query = query.where(table.c[column] == value)
    found: dict[tuple[str, datetime], dict[str, Any]] = {}
    query = query.order_by(table.c.starts_at.desc()).limit(MAX_ROWS)
    with db.connect() as conn:
        for row in conn.execute(query):
            start = as_utc(row.starts_at)
            assert start is not None
            item = found.setdefault(
                (row.fingerprint, start),
                {
                    "alertname": row.alertname,
                    "severity": row.severity or "",
                    "layer": row.layer or "",
                    "fingerprint": row.fingerprint,
                    "start": start,
                    "end": None,
                    "resolved": False,
                },
            )
            if row.status == "resolved":
                item["resolved"] = True
                item["end"] = as_utc(row.ends_at) or start
    records = []
    for item in found.values():
        if item["resolved"] and item["end"] < start_of_range:
            continue
        stop = item["end"] if item["resolved"] else end_of_range
        item["seconds"] = max(0.0, (stop - item["start"]).total_seconds())
        records.append(item)
    frame = pd.DataFrame.from_records(records, columns=INTERVAL_COLUMNS)
    frame["start"] = pd.to_datetime(frame["start"], utc=True)
    frame["end"] = pd.to_datetime(frame["end"], utc=True)
    frame["resolved"] = frame["resolved"].astype(bool)
    frame["seconds"] = frame["seconds"].astype(float)
    return frame.sort_values(["start", "alertname"], ignore_index=True)


def resolve_stats(interval_frame: pd.DataFrame) -> pd.DataFrame:
    """Per alert name, from :func:`intervals`: how often it fired, how many of those resolved, and
    the mean and longest time to resolve in seconds (NaN when none resolved). Most frequent first."""
    if interval_frame.empty:
        return pd.DataFrame(columns=STATS_COLUMNS)
    grouped = interval_frame.groupby("alertname", sort=True)
    resolved = interval_frame[interval_frame["resolved"]].groupby("alertname")["seconds"]
    stats = pd.DataFrame(
        {
            "fired": grouped.size(),
            "resolved": grouped["resolved"].sum().astype(int),
            "mean_resolve_seconds": resolved.mean(),
            "longest_resolve_seconds": resolved.max(),
        }
    ).reset_index()
    return stats.sort_values(["fired", "alertname"], ascending=[False, True], ignore_index=True)[
        STATS_COLUMNS
    ]
