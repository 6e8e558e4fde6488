"""Auto-diagnosis: the webhook's new firing alerts start their diagnosis run by themselves.

When the webhook has stored a *firing* notification for an alert instance (fingerprint and
startsAt) whose history row has no diagnosis yet, :func:`start_diagnoses` claims that row (one
conditional UPDATE, so of many deliveries, retries and service workers exactly one wins), starts
the alert's diagnosis notebook through the run machinery (``launch.start_run``, actor
``alertmanager``) and records the run id on the row (``diagnosis_run``). ``JAMEY_AUTO_DIAGNOSE=0``
turns it off. At most :data:`MAX_ACTIVE` diagnoses run at once: an instance left unclaimed then
starts on Alertmanager's next repeat of the notification.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from jamey_engine.errors import JameyError
from jamey_engine.models import AlertNotification
from jamey_engine.observability.alert_history import DIAGNOSIS_STARTING as CLAIMED
from jamey_engine.runbooks import launch, runs
from jamey_engine.runbooks.links import links_for_alert

if TYPE_CHECKING:
    from jamey_engine.db import Database
    from jamey_engine.engine import Engine
    from jamey_engine.observability.alert_history import Notification

log = logging.getLogger(__name__)

ACTOR = "alertmanager"
#: Diagnoses by Alertmanager queued or running at once; more wait for the next repeat.
MAX_ACTIVE = 4
#: The labels kept when all of them would not fit a runbook parameter (1000 characters).
_KEPT_LABELS = ("alertname", "severity", "layer", "key_id", "name", "instance", "job", "receiver")
_TABLE = cast(sa.Table, AlertNotification.__table__)


def labels_parameter(labels: dict[str, str]) -> str:
    """The alert's labels as the diagnosis's ``labels`` parameter: JSON within 1000 characters
    (the labels a diagnosis reads are kept first when all do not fit)."""
    text = json.dumps(labels, sort_keys=True)
    if len(text) <= 1000:
        return text
    kept = {k: v[:100] for k, v in labels.items() if k in _KEPT_LABELS}
    return json.dumps(kept, sort_keys=True)[:1000]


def _instance(notification: Notification) -> Any:
    table = _TABLE
    return sa.and_(
        table.c.fingerprint == notification.fingerprint[:64],
        table.c.starts_at == notification.starts_at,
        table.c.status == "firing",
    )


def _claim(db: Database, notification: Notification) -> bool:
    with db.begin() as conn:
        result = conn.execute(
            _TABLE.update()
            .where(_instance(notification), _TABLE.c.diagnosis_run.is_(None))
            .values(diagnosis_run=CLAIMED)
        )
    return bool(result.rowcount)


def _set(db: Database, notification: Notification, run_id: str | None) -> None:
    with db.begin() as conn:
        conn.execute(_TABLE.update().where(_instance(notification)).values(diagnosis_run=run_id))


def _active(db: Database) -> int:
    return sum(
        len(runs.list_runs(db, actor=ACTOR, status=status, limit=MAX_ACTIVE)) for status in runs.ACTIVE
    )


def start_diagnoses(engine: Engine, notifications: Iterable[Notification]) -> list[str]:
    """Start the diagnosis of every new firing alert instance among ``notifications`` (already
    stored); returns the ids of the runs started. Never raises for a run that cannot start (it is
    logged, and the instance is released so a repeat delivery tries again)."""
    if not engine.settings.auto_diagnose:
        return []
    started: list[str] = []
    for notification in notifications:
        links = links_for_alert(notification.alertname)
        if notification.status != "firing" or links is None:
            continue
        if _active(engine.db) >= MAX_ACTIVE:
            log.info("auto-diagnosis: %d diagnoses already run; the rest wait for a repeat", MAX_ACTIVE)
            break
        if not _claim(engine.db, notification):
            continue
        parameters = {
            "alertname": notification.alertname,
            "labels": labels_parameter(notification.labels),
            "starts_at": notification.starts_at.isoformat(),
            "fingerprint": notification.fingerprint,
        }
        try:
            record = launch.start_run(engine, links.diagnosis, parameters, actor=ACTOR)
        except JameyError as err:
            log.warning("auto-diagnosis of %s could not start: %s", notification.alertname, err)
            _set(engine.db, notification, None)
            continue
        _set(engine.db, notification, record.id)
        started.append(record.id)
    return started
