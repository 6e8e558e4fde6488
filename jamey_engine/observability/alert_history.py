"""Alert history: the notifications Alertmanager delivers to the webhook, and what they tell.

- :func:`parse_webhook` checks an Alertmanager webhook payload (version 4) and raises
  InvalidInput naming the first bad field; :data:`WEBHOOK_SCHEMA` states exactly what it
  accepts (the webhook route publishes it as its OpenAPI request body).
- :func:`store_notifications` writes each alert's notification once, whatever Alertmanager
  repeats or retries (one row per fingerprint, start and status), in one transaction: all or
  nothing.
- :func:`prune_history` keeps JAMEY_ALERT_HISTORY_DAYS days.
- :func:`history_frame` (the table, with filters), :func:`intervals` (one firing interval per
  alert instance: start, end, resolved) and :func:`resolve_stats` (per alert name: how often it
  fired, mean and longest time to resolve) are what the Alerts page, the CLI and the notebooks
  show; they never open a second definition of "an interval".
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Table

from jamey_engine.db import Database
from jamey_engine.durations import STORED_DATE_TIME_PATTERN, parse_timestamp, utcnow
from jamey_engine.errors import InvalidInput
from jamey_engine.models import AlertNotification

log = logging.getLogger(__name__)
_TABLE = cast(Table, AlertNotification.__table__)
_FRACTION = re.compile(r"(\.\d+)")

STATUSES = ("firing", "resolved")
WEBHOOK_VERSION = "4"
MAX_ALERTS = 10_000
MAX_FINGERPRINT = 64
# Go's zero time: how Alertmanager writes the endsAt of an alert that has not ended.
ZERO_TIME = "0001-01-01T00:00:00Z"
# When an alert started (or ended): RFC 3339 as Go writes it, in the years the history's frames hold.
MOMENT_PATTERN = f"^{STORED_DATE_TIME_PATTERN}$"
ENDS_PATTERN = f"^({ZERO_TIME}|{STORED_DATE_TIME_PATTERN})$"
_MOMENT = re.compile(MOMENT_PATTERN)
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


@dataclass(frozen=True)
class Notification:
    """One alert of a webhook payload, checked."""

    fingerprint: str
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")


def _text(value: Any, where: str) -> str:
    """``value`` if it is a string of valid Unicode text (no lone surrogate: no schema can name
    those, and no column can store them); InvalidInput naming ``where`` otherwise."""
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: expected a string, got {value!r}"[:200])
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidInput(
            f"{where}: not valid Unicode text (a lone surrogate at position {err.start})"
        ) from None
    return value


def _texts(value: Any, where: str) -> dict[str, str]:
    """An object whose values are all strings (labels, annotations)."""
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where}: expected an object of strings, got {value!r}"[:200])
    return {_text(k, f"{where} (a name)"): _text(v, _member(where, k)) for k, v in value.items()}


def _member(where: str, name: str) -> str:
    """Where a member is, for a one-line message: ``labels.severity``, else ``labels['a b\\n']``."""
    return f"{where}.{name}" if name.isidentifier() and len(name) <= 60 else f"{where}[{name[:60]!r}]"


def _moment(value: Any, where: str) -> datetime:
    """An RFC 3339 date-time in the years 1970 to 2261 (MOMENT_PATTERN), as aware UTC."""
    if not isinstance(value, str) or not _MOMENT.fullmatch(value):
        raise InvalidInput(
            f"{where}: expected an RFC 3339 date-time in the years 1970 to 2261, "
            f"e.g. 2026-01-31T12:00:00Z, got {value!r}"[:200]
        )
    # Go writes nanoseconds; Python reads at most microseconds.
    return parse_timestamp(_FRACTION.sub(lambda m: m.group(1)[:7], value), field=where)


def _status(value: Any, where: str) -> str:
    if value not in STATUSES:
        raise InvalidInput(f"{where}: expected firing or resolved, got {value!r}"[:200])
    return str(value)


def _check_group(payload: Mapping[str, Any]) -> None:
    """The payload's fields about the group of alerts: optional, but of their stated types."""
    for name in ("groupKey", "receiver", "externalURL"):
        if name in payload:
            _text(payload[name], name)
    if "status" in payload:
        _status(payload["status"], "status")
    for name in ("groupLabels", "commonLabels", "commonAnnotations"):
        if name in payload:
            _texts(payload[name], name)
    if "truncatedAlerts" in payload:
        count = payload["truncatedAlerts"]
        whole = isinstance(count, int) or (isinstance(count, float) and count.is_integer())
        if isinstance(count, bool) or not whole or count < 0:
            raise InvalidInput(f"truncatedAlerts: expected a whole number of at least 0, got {count!r}"[:200])


def _alert(alert: Any, where: str) -> Notification:
    if not isinstance(alert, Mapping):
        raise InvalidInput(f"{where}: expected an object")
    fingerprint = alert.get("fingerprint")
    if not isinstance(fingerprint, str) or not 0 < len(fingerprint) <= MAX_FINGERPRINT:
        raise InvalidInput(
            f"{where}.fingerprint: expected Alertmanager's fingerprint (1-{MAX_FINGERPRINT} characters)"
        )
    _text(fingerprint, f"{where}.fingerprint")
    status = _status(alert.get("status"), f"{where}.status")
    if "labels" not in alert:
        raise InvalidInput(f"{where}.labels: the alertname label is missing (no labels)")
    labels = _texts(alert["labels"], f"{where}.labels")
    if not labels.get("alertname"):
        raise InvalidInput(f"{where}.labels: the alertname label is missing")
    starts = _moment(alert.get("startsAt"), f"{where}.startsAt")
    ends = alert.get("endsAt", ZERO_TIME)
    ends_at = None if ends == ZERO_TIME else _moment(ends, f"{where}.endsAt")
    annotations = _texts(alert["annotations"], f"{where}.annotations") if "annotations" in alert else {}
    if "generatorURL" in alert:
        _text(alert["generatorURL"], f"{where}.generatorURL")
    return Notification(fingerprint, status, labels, annotations, starts, ends_at)


def parse_webhook(payload: Any) -> list[Notification]:
    """The alerts of an Alertmanager webhook payload (version 4), checked: exactly what
    :data:`WEBHOOK_SCHEMA` states (and valid Unicode text, which no schema can state).

    Raises InvalidInput naming the first bad field: not an object, another version, no
    ``alerts`` list, more than 10,000 alerts, a group field of the wrong type, or an alert
    without a fingerprint, a status of firing/resolved, an ``alertname`` label or a valid
    ``startsAt``, or with labels, annotations or an ``endsAt`` that are not what the schema says.
    """
    if not isinstance(payload, Mapping):
        raise InvalidInput("body: expected Alertmanager's webhook payload (a JSON object)")
    version = payload.get("version")
    if version != WEBHOOK_VERSION:
        raise InvalidInput(
            f"version: expected Alertmanager's webhook payload version '4', got {version!r}"[:200]
        )
    _check_group(payload)
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise InvalidInput("alerts: expected a list of alerts")
    if len(alerts) > MAX_ALERTS:
        raise InvalidInput(f"alerts: at most {MAX_ALERTS} alerts in one payload, got {len(alerts)}")
    return [_alert(alert, f"alerts[{index}]") for index, alert in enumerate(alerts)]


_STATUS_SCHEMA: dict[str, Any] = {"type": "string", "enum": list(STATUSES)}
_TEXTS_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
_MOMENT_TEXT = "RFC 3339 (as Go writes it, nanoseconds allowed) in the years 1970 to 2261"

#: Alertmanager's webhook payload (version 4) as a JSON Schema: exactly what :func:`parse_webhook`
#: accepts. Fields it does not name are allowed and ignored, as Alertmanager may add some.
WEBHOOK_SCHEMA: dict[str, Any] = {
    "title": "AlertmanagerWebhook",
    "description": "Alertmanager's webhook payload, version 4: one notification of a group of alerts.",
    "type": "object",
    "required": ["version", "alerts"],
    "properties": {
        "version": {"type": "string", "enum": [WEBHOOK_VERSION]},
        "groupKey": {"type": "string"},
        "truncatedAlerts": {"type": "integer", "minimum": 0},
        "status": _STATUS_SCHEMA,
        "receiver": {"type": "string", "description": "Stored with each alert (its first 100 characters)."},
        "groupLabels": _TEXTS_SCHEMA,
        "commonLabels": _TEXTS_SCHEMA,
        "commonAnnotations": _TEXTS_SCHEMA,
        "externalURL": {"type": "string"},
        "alerts": {
            "type": "array",
            "maxItems": MAX_ALERTS,
            "items": {
                "type": "object",
                "required": ["status", "labels", "startsAt", "fingerprint"],
                "properties": {
                    "status": _STATUS_SCHEMA,
                    "labels": {
                        "type": "object",
                        "description": "Strings; alertname is required, severity and layer are kept for filters.",
                        "required": ["alertname"],
                        "properties": {"alertname": {"type": "string", "minLength": 1}},
                        "additionalProperties": {"type": "string"},
                    },
                    "annotations": _TEXTS_SCHEMA,
                    "startsAt": {
                        "type": "string",
                        "format": "date-time",
                        "pattern": MOMENT_PATTERN,
                        "description": _MOMENT_TEXT + ".",
                    },
                    "endsAt": {
                        "type": "string",
                        "format": "date-time",
                        "pattern": ENDS_PATTERN,
                        "description": f"{_MOMENT_TEXT}, or Go's zero time {ZERO_TIME} (not ended).",
                    },
                    "generatorURL": {"type": "string"},
                    "fingerprint": {"type": "string", "minLength": 1, "maxLength": MAX_FINGERPRINT},
                },
            },
        },
    },
}


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
    prune history older than ``keep_days``. Raises Busy/Unavailable from the database."""
    now = utcnow()
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


def prune_history(db: Database, keep_days: int, *, now: datetime | None = None) -> int:
    """Delete notifications received more than ``keep_days`` days before ``now``; return how many."""
    if keep_days <= 0:
        raise InvalidInput(f"alert history days must be above zero, got {keep_days}")
    cutoff = (now or utcnow()) - timedelta(days=keep_days)
    table = _TABLE
    with db.begin() as conn:
        result = conn.execute(table.delete().where(table.c.received_at < cutoff))
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
    limit: int = 50_000,
) -> pd.DataFrame:
    """Notifications received in ``[since, until]`` (until: now), newest first, optionally of one
    alert name, severity or layer; columns HISTORY_COLUMNS (times UTC; ``diagnosis_run`` is the
    id of the diagnosis run a firing row started, or None), at most ``limit`` rows."""
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
    query = query.order_by(table.c.received_at.desc(), table.c.id.desc()).limit(limit)
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
) -> pd.DataFrame:
    """One row per firing interval (an alert instance: fingerprint and start) that overlaps
    ``[since, until]``: ``start``, ``end`` (its resolution, or NaT while still firing),
    ``resolved`` and ``seconds`` (to resolution, or so far up to ``until``). Columns
    INTERVAL_COLUMNS, ordered by start."""
    end_of_range = _utc(until) or utcnow()
    start_of_range = _utc(since)
    table = _TABLE
    query = sa.select(
        table.c.fingerprint, table.c.starts_at, table.c.status, table.c.ends_at,
        table.c.alertname, table.c.severity, table.c.layer,
    ).where(table.c.starts_at <= end_of_range)  # fmt: skip
    # Every row started before the range's end: an alert's firing row and its resolution must
    # meet, or one resolved before the range would look still firing (history is bounded by
    # JAMEY_ALERT_HISTORY_DAYS, so this stays small).
    for column, value in (("alertname", alertname), ("severity", severity), ("layer", layer)):
        if value:
            query = query.where(table.c[column] == value)
    found: dict[tuple[str, datetime], dict[str, Any]] = {}
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
