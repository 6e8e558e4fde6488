"""Chart annotations: what happened while a time series moved, as one DataFrame.

:func:`chart_annotations` gathers, for a time range:
- operations from the operation log (backups, restores, prunes, backup deletions, silences,
  runbook runs: every kind it holds) and key rotations and revocations from the keys' audit
  trail, as markers (``kind`` = ``operation``, ``end`` NaT);
- alert firing intervals from the alert history, as bands (``kind`` = ``alert``).

Columns: ``kind``, ``start``, ``end`` (UTC), ``what``, ``who``, ``result``, ``alertname`` (a
band's alert, empty for a marker) and ``text`` (the hover text: what, who, result). The
workbench draws the markers on every time-series chart and each band only on the charts of its
alert (``dashboards.annotations_for_chart``); a notebook can draw the same frame.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from jamey_engine.db import Database
from jamey_engine.durations import as_utc, utcnow
from jamey_engine.models import KeyEvent, Operation
from jamey_engine.observability.alert_history import intervals

COLUMNS = ["kind", "start", "end", "what", "who", "result", "alertname", "text"]
KEY_EVENTS = ("rotated", "revoked")


def _operation_what(kind: str, layer: str | None, count: int | None) -> str:
    if kind == "prune":
        removed = f" ({count} documents)" if count is not None else ""
        return f"prune of {layer or 'memory'}{removed}"
    if kind == "delete":
        return "backup deleted"
    return kind.replace("_", " ")


def chart_annotations(
    db: Database, start: datetime, end: datetime | None = None, *, alerts: bool = True
) -> pd.DataFrame:
    """Operations, key rotations and revocations in ``[start, end]`` as markers and (with
    ``alerts``) alert firing intervals overlapping it as bands; columns COLUMNS, by start.
    Raises Busy/Unavailable from the database."""
    since, until = as_utc(start), as_utc(end) if end is not None else utcnow()
    records: list[dict[str, object]] = []
    ops = Operation.__table__
    events = KeyEvent.__table__
    with db.connect() as conn:
        for row in conn.execute(
            sa.select(
                ops.c.at,
                ops.c.kind,
                ops.c.status,
                ops.c.layer,
                ops.c.count.label("documents"),
                ops.c.detail,
                ops.c.actor,
            )
            .where(ops.c.at >= since, ops.c.at <= until)
            .order_by(ops.c.at)
        ):
            what = _operation_what(row.kind, row.layer, row.documents)
            who = row.actor or "unknown"
            result = row.status if not row.detail else f"{row.status}: {row.detail}"
            records.append(
                {
                    "kind": "operation",
                    "start": row.at,
                    "end": None,
                    "what": what,
                    "who": who,
                    "result": result,
                }
            )
        for event in conn.execute(
            sa.select(events.c.at, events.c.event, events.c.key_name, events.c.actor)
            .where(events.c.at >= since, events.c.at <= until, events.c.event.in_(KEY_EVENTS))
            .order_by(events.c.at)
        ):
            records.append(
                {"kind": "operation", "start": event.at, "end": None, "what": f"key {event.key_name!r} {event.event}",
                 "who": event.actor, "result": "success"}
            )  # fmt: skip
    if alerts:
        for item in intervals(db, since, until).itertuples(index=False):
            severity = f" ({item.severity})" if item.severity else ""
            layer = f" layer {item.layer}" if item.layer else ""
            records.append(
                {
                    "kind": "alert",
                    "start": item.start,
                    "end": item.end if item.resolved else pd.Timestamp(until),
                    "what": f"{item.alertname}{severity}{layer} firing",
                    "who": "Alertmanager",
                    "result": "resolved" if item.resolved else "still firing",
                    "alertname": item.alertname,
                }
            )
    frame = pd.DataFrame.from_records(records, columns=COLUMNS[:-1])
    frame["alertname"] = frame["alertname"].fillna("")
    frame["start"] = pd.to_datetime(frame["start"], utc=True)
    frame["end"] = pd.to_datetime(frame["end"], utc=True)
    frame["text"] = [
        f"{what}<br>by {who}<br>{result}"[:500]
        for what, who, result in zip(frame["what"], frame["who"], frame["result"], strict=True)
    ]
    return frame.sort_values("start", ignore_index=True)[COLUMNS]
