"""An alert with the evidence its diagnosis gathered: what ``jamey alerts show`` and the Alerts
page show beside the alert.

:func:`alert_evidence` finds an alert instance in the history by its fingerprint (its newest
firing, and whether it resolved since) and the diagnosis run recorded on it, with that run's
``verdict``, ``evidence`` and ``suggested_runbook``. :func:`rediagnose` starts the diagnosis again
by hand (ops:write) and records the new run on the same row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from jamey_engine.errors import InvalidInput, NotFound
from jamey_engine.models import AlertNotification
from jamey_engine.observability.alert_history import DIAGNOSIS_STARTING
from jamey_engine.runbooks import runs

if TYPE_CHECKING:
    from jamey_engine.db import Database
    from jamey_engine.engine import Engine

_TABLE = cast(sa.Table, AlertNotification.__table__)


@dataclass(frozen=True)
class AlertEvidence:
    """One alert instance and its diagnosis (``run`` None: none started yet, or it was removed)."""

    fingerprint: str
    alertname: str
    severity: str
    status: str  # firing, or resolved once its resolution arrived
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    diagnosis_run: str | None
    run: runs.RunRecord | None

    @property
    def summary(self) -> dict[str, Any]:
        """The diagnosis run's summary ({} until it finished with one)."""
        return dict(self.run.summary or {}) if self.run is not None else {}

    @property
    def verdict(self) -> str | None:
        return self.summary.get("verdict")

    @property
    def evidence(self) -> dict[str, Any]:
        return dict(self.summary.get("evidence") or {})

    @property
    def series(self) -> list[dict[str, Any]]:
        """The Prometheus series the diagnosis gathered (``diagnosis.series_record`` each)."""
        found = self.summary.get("series")
        return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []

    @property
    def gathered_text(self) -> str | None:
        """``Evidence, gathered at HH:MM:SS in N s`` once the run finished, else None."""
        run = self.run
        if run is None or run.finished_at is None or run.active:
            return None
        seconds = run.duration_seconds or 0.0
        return f"Evidence, gathered at {run.finished_at:%H:%M:%S} in {seconds:.0f} s"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: the alert, ``diagnosis_run``, its status, ``verdict``, ``evidence``,
        ``suggested_runbook`` and ``gathered_at``."""
        run = self.run
        return {
            "fingerprint": self.fingerprint,
            "alertname": self.alertname,
            "severity": self.severity,
            "status": self.status,
            "labels": self.labels,
            "annotations": self.annotations,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "diagnosis_run": self.diagnosis_run,
            "diagnosis_status": run.status if run else None,
            "verdict": self.verdict,
            "evidence": self.evidence,
            "suggested_runbook": self.summary.get("suggested_runbook"),
            "gathered_at": run.finished_at.isoformat() if run and run.finished_at else None,
            "gather_seconds": run.duration_seconds if run and not run.active else None,
            "error": run.error if run else None,
        }


def _rows(db: Database, fingerprints: Iterable[str]) -> list[Any]:
    wanted = sorted({str(f)[:64] for f in fingerprints})
    if not wanted:
        return []
    query = (
        sa.select(_TABLE)
        .where(_TABLE.c.fingerprint.in_(wanted))
        .order_by(_TABLE.c.starts_at.desc(), _TABLE.c.id.desc())
    )
    with db.connect() as conn:
        return list(conn.execute(query))


def evidence_for(db: Database, fingerprints: Iterable[str]) -> dict[str, AlertEvidence]:
    """Per fingerprint found in the history: its newest instance and its diagnosis."""
    newest: dict[str, AlertEvidence] = {}
    resolved: set[tuple[str, datetime]] = set()
    firing_rows = []
    for row in _rows(db, fingerprints):
        if row.status == "resolved":
            resolved.add((row.fingerprint, row.starts_at))
        else:
            firing_rows.append(row)
    for row in firing_rows:
        if row.fingerprint in newest:
            continue
        run_id = None if row.diagnosis_run in (None, DIAGNOSIS_STARTING) else row.diagnosis_run
        try:
            run = runs.get_run(db, run_id) if run_id else None
        except NotFound:
            run = None
        labels = json.loads(row.labels or "{}")
        newest[row.fingerprint] = AlertEvidence(
            fingerprint=row.fingerprint,
            alertname=row.alertname,
            severity=row.severity or "",
            status="resolved" if (row.fingerprint, row.starts_at) in resolved else "firing",
            labels=labels,
            annotations=json.loads(row.annotations or "{}"),
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            diagnosis_run=run_id,
            run=run,
        )
    return newest


def alert_evidence(db: Database, fingerprint: str) -> AlertEvidence:
    """The alert whose Alertmanager fingerprint is ``fingerprint``, with its diagnosis.

    Raises InvalidInput for an empty fingerprint, NotFound naming it when the history holds no
    firing notification of it."""
    if not str(fingerprint).strip():
        raise InvalidInput("fingerprint must not be empty")
    found = evidence_for(db, [fingerprint]).get(str(fingerprint)[:64])
    if found is None:
        raise NotFound(
            f"alert fingerprint {fingerprint!r} is not in the alert history (no firing notification)"
        )
    return found


def latest_evidence(db: Database, alertname: str) -> AlertEvidence | None:
    """The newest firing instance of ``alertname`` in the history, with its diagnosis; None
    when the history holds none."""
    query = (
        sa.select(_TABLE.c.fingerprint)
        .where(_TABLE.c.alertname == alertname, _TABLE.c.status == "firing")
        .order_by(_TABLE.c.starts_at.desc(), _TABLE.c.id.desc())
        .limit(1)
    )
    with db.connect() as conn:
        fingerprint = conn.execute(query).scalar()
    return evidence_for(db, [fingerprint]).get(fingerprint) if fingerprint else None


def rediagnose(engine: Engine, fingerprint: str, *, actor: str, scopes: Iterable[str] | None = None) -> str:
    """Start the diagnosis of alert ``fingerprint`` again (scope ops:write when ``scopes`` are
    given) and record the new run on its history row; returns the run id. Raises NotFound for an
    unknown fingerprint, Forbidden without the scope."""
    from jamey_engine.runbooks import launch
    from jamey_engine.runbooks.auto_diagnosis import labels_parameter
    from jamey_engine.runbooks.links import DIAGNOSIS_RUNBOOK, links_for_alert

    found = alert_evidence(engine.db, fingerprint)
    links = links_for_alert(found.alertname)
    parameters = {
        "alertname": found.alertname,
        "labels": labels_parameter(found.labels),
        "starts_at": found.starts_at.isoformat(),
        "fingerprint": found.fingerprint,
    }
    record = launch.start_run(
        engine, links.diagnosis if links else DIAGNOSIS_RUNBOOK, parameters, actor=actor, scopes=scopes
    )
    with engine.db.begin() as conn:
        conn.execute(
            _TABLE.update()
            .where(
                _TABLE.c.fingerprint == found.fingerprint,
                _TABLE.c.starts_at == found.starts_at,
                _TABLE.c.status == "firing",
            )
            .values(diagnosis_run=record.id)
        )
    return record.id
