"""Alert history: the notifications Alertmanager delivers to the webhook, and what they tell.

- :func:`parse_webhook` (in :mod:`.webhook`, re-exported here) checks an Alertmanager webhook
  payload (version 4) and raises InvalidInput naming the first bad field; :data:`WEBHOOK_SCHEMA`
  states exactly what it accepts (the webhook route publishes it as its OpenAPI request body).
- :func:`store_notifications` writes each alert's notification once, whatever Alertmanager
  repeats or retries (one row per fingerprint, start and status), in one transaction: all or
  nothing.
- :func:`prune_history` keeps JAMEY_ALERT_HISTORY_DAYS days, by receipt and by the alert's own
  times (a notification whose alert ended, or started and still fires, before the window goes,
  and one like it is never stored).
- Every query is bounded by its range and by MAX_ROWS rows.
- :func:`history_frame` (the table, with filters), :func:`intervals` (one firing interval per
  alert instance: start, end, resolved) and :func:`resolve_stats` (per alert name: how often it
  fired, mean and longest time to resolve) are what the Alerts page, the CLI and the notebooks
  show; they never open a second definition of "an interval".
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Table

from jamey_engine.db import Database
from jamey_engine.durations import utcnow
from jamey_engine.errors import InvalidInput
from jamey_engine.models import AlertNotification
from jamey_engine.observability.webhook import ENDS_PATTERN as ENDS_PATTERN
from jamey_engine.observability.webhook import MAX_ALERTS as MAX_ALERTS
from jamey_engine.observability.webhook import MAX_FINGERPRINT, STATUSES
from jamey_engine.observability.webhook import MOMENT_PATTERN as MOMENT_PATTERN
from jamey_engine.observability.webhook import WEBHOOK_SCHEMA as WEBHOOK_SCHEMA
from jamey_engine.observability.webhook import Notification as Notification
from jamey_engine.observability.webhook import parse_webhook as parse_webhook

log = logging.getLogger(__name__)
_TABLE = cast(Table, AlertNotification.__table__)

#: Most rows one history query reads (the newest are kept).
MAX_ROWS = 50_000
#: How far before a range an alert still firing into it may have started (the default history).
DEFAULT_LOOKBACK = timedelta(days=90)
#: How often one process prunes old history while storing notifications.
PRUNE_EVERY_SECONDS = 3600.0

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


_last_prune: dict[str, float] = {}
_prune_lock = threading.Lock()


def _column(text: str, size: int) -> str:
    """``text`` as its column keeps it: the first ``size`` characters, a NUL (which PostgreSQL's
    text cannot hold) as U+FFFD. The labels and annotations keep every character (as JSON)."""
    return text.replace("\x00", "\ufffd")[:size]


def store_notifications(
    db: Database, notifications: list[Notification], *, receiver: str | None = None, keep_days: int = 90
) -> None:
    """Write each notification once (a repeat or a retry of the same fingerprint, start and status
    is ignored), all in one transaction; then, at most once an hour per process and database,
    prune history older than ``keep_days``. A notification whose alert's own time (its end, or
    its start while firing) is already older than ``keep_days`` is not stored: pruning would
    drop it. Raises Busy/Unavailable from the database."""
    now = utcnow()
    cutoff = now - timedelta(days=keep_days)
    rows = [
        {
            "fingerprint": _column(n.fingerprint, MAX_FINGERPRINT),
            "alertname": _column(n.alertname, 200),
            "severity": (n.labels.get("severity") or None) and _column(n.labels["severity"], 32),
            "layer": (n.labels.get("layer") or None) and _column(n.labels["layer"], 32),
            "status": n.status,
            "starts_at": n.starts_at,
            "ends_at": n.ends_at if n.status == "resolved" else None,
            "labels": json.dumps(n.labels, sort_keys=True),
            "annotations": json.dumps(n.annotations, sort_keys=True),
            "receiver": _column(receiver, 100) if receiver else None,
            "received_at": now,
        }
        for n in notifications
        if _own_time(n.status, n.starts_at, n.ends_at) >= cutoff
    ]
    table = _TABLE
    if rows:
        with db.begin() as conn:
            if conn.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                pg = pg_insert(table).on_conflict_do_nothing(constraint="uq_alert_notifications_once")
                conn.execute(pg, rows)
            else:
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                conn.execute(sqlite_insert(table).on_conflict_do_nothing(), rows)
    key = db.safe_url
    with _prune_lock:
        due = time.monotonic() - _last_prune.get(key, -PRUNE_EVERY_SECONDS) >= PRUNE_EVERY_SECONDS
        if due:
            _last_prune[key] = time.monotonic()
    if due:
        prune_history(db, keep_days)


def _own_time(status: str, starts_at: datetime, ends_at: datetime | None) -> datetime:
    """The latest time a notification tells of: its end once resolved, else its start."""
    return ends_at if status == "resolved" and ends_at is not None else starts_at


def prune_history(db: Database, keep_days: int, *, now: datetime | None = None) -> int:
    """Delete notifications received more than ``keep_days`` days before ``now``, and those whose
    alert's own time (its end once resolved, else its start) is that old; return how many."""
    if keep_days <= 0:
        raise InvalidInput(f"alert history days must be above zero, got {keep_days}")
    cutoff = (now or utcnow()) - timedelta(days=keep_days)
    table = _TABLE
    old_alert = sa.or_(
        sa.and_(table.c.status == "resolved", table.c.ends_at < cutoff),
        sa.and_(table.c.status == "firing", table.c.starts_at < cutoff),
    )
    with db.begin() as conn:
        result = conn.execute(table.delete().where(sa.or_(table.c.received_at < cutoff, old_alert)))
    return int(result.rowcount or 0)


def notification_counts(db: Database) -> dict[str, int]:
    """Stored notifications by status (firing, resolved; zero included): what the metric reports."""
    table = _TABLE
    counts = dict.fromkeys(STATUSES, 0)
    with db.connect() as conn:
        for status, number in conn.execute(
            sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
        ):
            counts[str(status)] = int(number)
    return counts


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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
    ).where(table.c.received_at >= _utc(since))  # fmt: skip
    if until is not None:
        query = query.where(table.c.received_at <= _utc(until))
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
                "received_at": _utc(row.received_at),
                "alertname": row.alertname,
                "severity": row.severity or "",
                "layer": row.layer or "",
                "status": row.status,
                "starts_at": _utc(row.starts_at),
                "ends_at": _utc(row.ends_at),
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
    end_of_range = _utc(until) or utcnow()
    start_of_range = _utc(since)
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
            start = _utc(row.starts_at)
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
                item["end"] = _utc(row.ends_at) or start
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
