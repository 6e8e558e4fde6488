"""Alert history storage: each notification Alertmanager delivers, written once, and pruned.

- :func:`store_notifications` writes each alert's notification once, whatever Alertmanager
  repeats or retries (one row per fingerprint, start and status), in one transaction: all or
  nothing.
- :func:`prune_history` keeps JAMEY_ALERT_HISTORY_DAYS days, by receipt and by the alert's own
  times (a notification whose alert ended, or started and still fires, before the window goes,
  and one like it is never stored).
- :func:`notification_counts`: the stored rows by status, for the metric.

What the rows tell (the table, intervals, statistics) is :mod:`.alert_history`.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy import Table

from jamey_engine.db import Database
from jamey_engine.durations import days_before, utcnow
from jamey_engine.errors import InvalidInput
from jamey_engine.models import AlertNotification
from jamey_engine.observability.webhook import MAX_FINGERPRINT, STATUSES, Notification

_TABLE = cast(Table, AlertNotification.__table__)

#: How often one process prunes old history while storing notifications.
PRUNE_EVERY_SECONDS = 3600.0

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
    cutoff = days_before(now, keep_days)
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
    cutoff = days_before(now or utcnow(), keep_days)
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
