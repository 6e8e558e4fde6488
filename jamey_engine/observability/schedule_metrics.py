"""The runbook schedules' outcome on /metrics, read from their rows at scrape time (one query
with their last runs), so a schedule run by any worker shows from every worker.

``runbook_schedule_last_success_timestamp_seconds`` and ``runbook_schedule_last_run_failed`` feed
``JameyRunbookFailed``; the period and active-since gauges (absent while a schedule is paused)
let ``JameyScheduledRunbookMissed`` say "no success for two periods" without counting the time
a schedule was paused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from jamey_engine.db import Database


def schedule_families(db: Database) -> Iterator[Metric]:
    """The four gauges, each labelled by schedule id and runbook."""
    from jamey_engine.runbooks.schedules import FAILED, list_schedules

    labels = ["schedule", "runbook"]
    success = GaugeMetricFamily(
        "runbook_schedule_last_success_timestamp_seconds",
        "When each runbook schedule's last successful run finished (absent before the first).",
        labels=labels,
    )
    failed = GaugeMetricFamily(
        "runbook_schedule_last_run_failed",
        "1 when the last run of a runbook schedule failed (or its process died), else 0.",
        labels=labels,
    )
    period = GaugeMetricFamily(
        "runbook_schedule_period_seconds",
        "The gap between an active runbook schedule's next two slots (absent while paused).",
        labels=labels,
    )
    since = GaugeMetricFamily(
        "runbook_schedule_active_since_timestamp_seconds",
        "When an active runbook schedule was created or last resumed (absent while paused).",
        labels=labels,
    )
    for schedule in list_schedules(db):
        names = [str(schedule.id), schedule.runbook]
        if schedule.last_success_at is not None:
            success.add_metric(names, schedule.last_success_at.timestamp())
        if schedule.last_status is not None:
            failed.add_metric(names, 1.0 if schedule.last_status in FAILED else 0.0)
        if not schedule.paused:
            period.add_metric(names, schedule.period.total_seconds())
            since.add_metric(names, schedule.active_since.timestamp())
    yield from (success, failed, period, since)
