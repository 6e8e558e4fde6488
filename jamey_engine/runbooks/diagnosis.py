"""Diagnose one alert: gather what a person would look at first, and say what it means.

:func:`diagnose` takes an alert's name, labels and start time and gathers, around the firing
time: the family's Prometheus series (``observability.evidence_queries``), the operation log of
the last hours, the service's own log lines when the stack's log file is readable, the keys with
the most errors and 429s, the layers' sizes on disk, the last backups and their state, and the
recent key and retention-policy changes. :func:`jamey_engine.runbooks.verdicts.verdict` turns the
named facts into one sentence. The result's :meth:`Diagnosis.summary` is what the diagnosis
notebook's last cell returns (``verdict``, ``evidence``, ``suggested_runbook``), which the runner
stores on the run.

Nothing here changes data: sizes are read from the directories, not through the index writer.
A source that cannot be read (Prometheus down, no stack log) becomes a note, never an error.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from jamey_engine.durations import as_utc, parse_timestamp, utcnow
from jamey_engine.errors import InvalidInput, JameyError
from jamey_engine.observability.evidence_queries import EvidenceQuery, queries_for
from jamey_engine.runbooks.links import links_for_alert, runbook_for_alert
from jamey_engine.runbooks.verdicts import verdict

if TYPE_CHECKING:
    from jamey_engine.engine import Engine
    from jamey_engine.observability.promql import PromQuery

log = logging.getLogger(__name__)

#: How far before the firing time the charts start, and how many hours of operations are read.
LOOKBACK = timedelta(hours=1)
OPERATION_HOURS = 6
CHANGE_HOURS = 24
LOG_TAIL_BYTES = 256 * 1024
LOG_LINES = 20
SERVICE_LOG = Path("stack") / "service.log"  # under the data dir, as `jamey stack` writes it
#: What every diagnosis reads besides its family's Prometheus series, as the alert pages list it.
SOURCES = (
    f"the operation log of the last {OPERATION_HOURS} hours (failed operations, the last backup"
    " and retention errors)",
    f"the service's last {LOG_LINES} warnings and errors from `data/stack/service.log` (when"
    " `jamey stack` writes it)",
    "the keys with the most errors and 429s over a day",
    "the layers' sizes on disk",
    "the last backups and their state",
    f"the key and retention-policy changes of the last {CHANGE_HOURS} hours",
)
_NOTEWORTHY = re.compile(r"\b(ERROR|CRITICAL|WARNING|Traceback|Exception)\b")


@dataclass
class Diagnosis:
    """What a diagnosis gathered about one alert, and its verdict."""

    alertname: str
    family: str
    labels: dict[str, str]
    starts_at: datetime
    gathered_at: datetime
    evidence: dict[str, Any] = field(default_factory=dict)
    series: dict[str, tuple[EvidenceQuery, pd.DataFrame]] = field(default_factory=dict)
    operations: pd.DataFrame = field(default_factory=pd.DataFrame)
    log_lines: list[str] = field(default_factory=list)
    keys: pd.DataFrame = field(default_factory=pd.DataFrame)
    layers: pd.DataFrame = field(default_factory=pd.DataFrame)
    backups: pd.DataFrame = field(default_factory=pd.DataFrame)
    changes: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    verdict: str = ""
    suggested_runbook: str | None = None
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The run's summary: ``verdict``, ``evidence`` (named facts, JSON values),
        ``suggested_runbook`` (or None), and the alert, family, time and notes they came from."""
        return {
            "verdict": self.verdict,
            "evidence": _jsonable(self.evidence),
            "suggested_runbook": self.suggested_runbook,
            "alertname": self.alertname,
            "family": self.family,
            "labels": self.labels,
            "starts_at": self.starts_at.isoformat(),
            "gathered_at": self.gathered_at.isoformat(),
            "gather_seconds": round(self.seconds, 2),
            "notes": self.notes,
            "series": [series_record(query, frame) for query, frame in self.series.values()],
        }


#: Points kept per line of a series in the summary: enough for a chart, small enough to store.
SERIES_POINTS = 120


def series_record(query: EvidenceQuery, frame: pd.DataFrame) -> dict[str, Any]:
    """One gathered series as JSON for the run's summary (the Alerts page draws it): its
    ``name``, ``title``, ``unit``, ``labels`` and ``points`` (``timestamp`` ISO 8601, ``value``,
    and the label columns), at most :data:`SERIES_POINTS` per line, evenly thinned."""
    columns = [label for label in query.labels if label in frame.columns]
    parts = [part for _, part in frame.groupby(columns, sort=True)] if columns else [frame]
    points: list[dict[str, Any]] = []
    for part in parts:
        step = max(1, math.ceil(len(part) / SERIES_POINTS))
        for row in part.iloc[::step].itertuples(index=False):
            values = row._asdict()
            point = {"timestamp": _jsonable(values["timestamp"]), "value": _jsonable(float(values["value"]))}
            point.update({label: str(values[label]) for label in columns})
            points.append(point)
    return {"name": query.name, "title": query.title, "unit": query.unit, "labels": columns, "points": points}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def parse_labels(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """An alert's labels from a JSON object (as a runbook parameter carries them) or a mapping.
    Raises InvalidInput naming ``labels`` when the text is not a JSON object of strings."""
    if text is None or text == "":
        return {}
    if isinstance(text, Mapping):
        return {str(k): str(v) for k, v in text.items()}
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidInput(
            f'labels {text[:80]!r} must be a JSON object, e.g. {{"layer": "episodic"}}'
        ) from None
    if not isinstance(value, dict):
        raise InvalidInput(f"labels {text[:80]!r} must be a JSON object of strings")
    return {str(k): str(v) for k, v in value.items()}


def _latest(frame: pd.DataFrame, labels: tuple[str, ...]) -> Any:
    """The series' value at its newest timestamp: a number, or {label values: number} with labels."""
    if frame.empty:
        return None
    newest = frame[frame["timestamp"] == frame["timestamp"].max()]
    if not labels:
        return float(newest["value"].iloc[-1])
    return {
        " ".join(str(row[label]) for label in labels): float(row["value"]) for _, row in newest.iterrows()
    }


def _prometheus_facts(diagnosis: Diagnosis, prom: PromQuery | None, now: datetime) -> None:
    if prom is None:
        diagnosis.notes.append("Prometheus: not configured")
        return
    from jamey_engine.observability.promql import NoData

    start = max(min(diagnosis.starts_at, now) - LOOKBACK, now - timedelta(days=1))
    for query in queries_for(diagnosis.family):
        try:
            frame = prom.custom_range(query.expression(prom.selector), start, now, query.labels)
        except NoData:
            diagnosis.evidence[query.name] = None
            continue
        except JameyError as err:
            diagnosis.notes.append(f"Prometheus: {err}")
            return
        diagnosis.series[query.name] = (query, frame)
        diagnosis.evidence[query.name] = _latest(frame, query.labels)


def _operations(diagnosis: Diagnosis, engine: Engine, now: datetime) -> None:
    from jamey_engine import oplog

    since = now - timedelta(hours=OPERATION_HOURS)
    rows = [row for row in oplog.recent_operations(engine.db, limit=500) if as_utc(row["at"]) >= since]  # type: ignore[call-overload]
    frame = pd.DataFrame(
        rows, columns=["at", "kind", "status", "duration_seconds", "layer", "count", "detail", "actor"]
    )
    diagnosis.operations = frame
    failed = frame[frame["status"] == "failure"] if not frame.empty else frame
    diagnosis.evidence["failed_operations"] = len(failed)
    for kind, fact in (("backup", "last_backup_error"), ("retention", "last_retention_error")):
        of_kind = frame[frame["kind"] == kind] if not frame.empty else frame
        if not of_kind.empty and of_kind.iloc[0]["status"] == "failure":
            diagnosis.evidence[fact] = str(of_kind.iloc[0]["detail"] or "no detail recorded")[:300]


def _log_lines(diagnosis: Diagnosis, engine: Engine, now: datetime) -> None:
    """The service's noteworthy log lines: from journald when the service runs under systemd and
    its journal is readable, else from the stack's log file."""
    from jamey_engine.observability.journal import read_journal, systemd_unit

    unit = systemd_unit(engine.settings.systemd_unit)
    if unit is not None:
        since = max(min(diagnosis.starts_at, now) - LOOKBACK, now - timedelta(days=1))
        entries = read_journal(unit, since)
        if entries is not None:
            noteworthy = [entry.line() for entry in entries if entry.noteworthy]
            diagnosis.log_lines = noteworthy[-LOG_LINES:]
            diagnosis.evidence["log_problems"] = len(noteworthy)
            diagnosis.evidence["log_source"] = f"journald ({unit})"
            return
        diagnosis.notes.append(
            f"service log: the journal of {unit} is not readable here; trying the log file"
        )
    _log_file_lines(diagnosis, engine)


def _log_file_lines(diagnosis: Diagnosis, engine: Engine) -> None:
    path = engine.settings.data_dir / SERVICE_LOG
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        diagnosis.notes.append(f"service log: {path} is not readable (not run by `jamey stack`?)")
        return
    lines = [line for line in tail.splitlines() if _NOTEWORTHY.search(line)]
    diagnosis.log_lines = lines[-LOG_LINES:]
    diagnosis.evidence["log_problems"] = len(lines)
    diagnosis.evidence["log_source"] = str(SERVICE_LOG)


def _keys(diagnosis: Diagnosis, engine: Engine, now: datetime) -> None:
    from jamey_engine.keys.usage import usage_by_key

    rows = usage_by_key(engine.db, days=1, now=now)
    frame = pd.DataFrame(rows, columns=["id", "name", "requests", "rate_limited", "errors", "last_used_at"])
    frame = frame[(frame["errors"] > 0) | (frame["rate_limited"] > 0)]
    diagnosis.keys = frame.sort_values(["rate_limited", "errors"], ascending=False).head(5)
    for column, fact in (("rate_limited", "key_most_429s"), ("errors", "key_most_errors")):
        if not frame.empty and frame[column].max() > 0:
            row = frame.loc[frame[column].idxmax()]
            diagnosis.evidence[fact] = f"{row['name']} ({row['id']}): {int(row[column])} in a day"
    if diagnosis.family == "alert_receiver_failing":
        from jamey_engine.observability.alert_receiver import KEY_NAME

        states = [key.status for key in engine.keys.list() if key.name == KEY_NAME]
        diagnosis.evidence["webhook_key"] = ", ".join(states) if states else "missing"


def _layers(diagnosis: Diagnosis, engine: Engine) -> None:
    from jamey_engine.memory import LAYERS
    from jamey_engine.memory.generations import dir_size

    sizes = {}
    for name in LAYERS:
        path = engine.settings.memory_dir / name
        sizes[name] = dir_size(path) if path.exists() else 0
    diagnosis.layers = pd.DataFrame(list(sizes.items()), columns=["layer", "bytes_on_disk"])
    largest = max(sizes, key=lambda name: sizes[name])
    if sizes[largest]:
        diagnosis.evidence["largest_layer"] = f"{largest} ({sizes[largest]} bytes on disk)"
    layer = diagnosis.labels.get("layer")
    if layer:
        diagnosis.evidence["layer"] = layer
        for name, fact in (
            ("index_size", "layer_index_size"),
            ("index_growth_per_day", "layer_growth_per_day"),
        ):
            value = diagnosis.evidence.get(name)
            if isinstance(value, Mapping) and layer in value:
                diagnosis.evidence[fact] = value[layer]


def _backups(diagnosis: Diagnosis, engine: Engine) -> None:
    found = engine.vault.list()
    rows = [
        {
            "id": b.id,
            "created_at": b.created_at,
            "status": b.status,
            "size_bytes": b.size_bytes,
            "problem": b.problem,
        }
        for b in found[:5]
    ]
    diagnosis.backups = pd.DataFrame(rows, columns=["id", "created_at", "status", "size_bytes", "problem"])
    diagnosis.evidence["backups"] = len(found)
    if found:
        diagnosis.evidence["last_backup"] = f"{found[0].id} ({found[0].status})"


def _changes(diagnosis: Diagnosis, engine: Engine, now: datetime) -> None:
    from jamey_engine.models import KeyEvent, RetentionEvent

    since = now - timedelta(hours=CHANGE_HOURS)
    rows: list[dict[str, Any]] = []
    with engine.db.session() as session:
        for event in session.scalars(
            sa.select(KeyEvent).where(KeyEvent.at >= since).order_by(KeyEvent.at.desc()).limit(20)
        ):
            rows.append(
                {
                    "at": event.at,
                    "what": f"key {event.event}",
                    "subject": f"{event.key_name} ({event.key_id})",
                    "actor": event.actor,
                }
            )
        for change in session.scalars(
            sa.select(RetentionEvent)
            .where(RetentionEvent.at >= since)
            .order_by(RetentionEvent.at.desc())
            .limit(20)
        ):
            rows.append(
                {
                    "at": change.at,
                    "what": "retention policy",
                    "subject": f"{change.layer}: {change.before} -> {change.after}",
                    "actor": change.actor,
                }
            )
    frame = pd.DataFrame(rows, columns=["at", "what", "subject", "actor"])
    diagnosis.changes = (
        frame.sort_values("at", ascending=False, ignore_index=True) if not frame.empty else frame
    )
    diagnosis.evidence["changes_24h"] = len(frame)


def diagnose(
    engine: Engine,
    prom: PromQuery | None,
    alertname: str,
    labels: Mapping[str, str] | None = None,
    starts_at: datetime | str | None = None,
    *,
    available_runbooks: Collection[str] | None = None,
    now: datetime | None = None,
) -> Diagnosis:
    """Gather the evidence of alert ``alertname`` (with ``labels``, firing since ``starts_at``:
    now when None) and judge it. ``prom`` None (or unreachable) leaves the Prometheus facts out
    with a note. ``available_runbooks`` (default: the repository's notebooks) bounds the
    suggested remediation.

    Raises InvalidInput for an alert that is not in the rules (links.ALERT_LINKS) or a start time
    that is not an ISO 8601 date-time.
    """
    began = time.monotonic()
    links = links_for_alert(alertname)
    if links is None:
        raise InvalidInput(
            f"alertname {alertname!r} is not an alert of prometheus/rules/ (no diagnosis for it)"
        )
    now = now or utcnow()
    if isinstance(starts_at, str):
        starts = parse_timestamp(starts_at, field="starts_at") if starts_at.strip() else now
    else:
        starts = starts_at or now
    given = dict(labels or {})
    diagnosis = Diagnosis(alertname, links.family, given, starts, now)
    _prometheus_facts(diagnosis, prom, now)
    for gather in (
        lambda: _operations(diagnosis, engine, now),
        lambda: _log_lines(diagnosis, engine, now),
        lambda: _keys(diagnosis, engine, now),
        lambda: _layers(diagnosis, engine),
        lambda: _backups(diagnosis, engine),
        lambda: _changes(diagnosis, engine, now),
    ):
        try:
            gather()
        except JameyError as err:
            diagnosis.notes.append(str(err))
    diagnosis.verdict = verdict(links.family, diagnosis.evidence)
    remediation = runbook_for_alert(alertname, given, available_runbooks)
    diagnosis.suggested_runbook = remediation.runbook if remediation else None
    diagnosis.seconds = time.monotonic() - began
    return diagnosis
