"""The PromQL a diagnosis reads for each alert family: the series a person would chart first.

Each :class:`EvidenceQuery` is named (its name is the evidence fact it yields), built from the
service's label selector (``job="jamey"``), and says which labels become columns. Families are
the ones of ``jamey_engine.runbooks.links.ALERT_LINKS``; :func:`queries_for` is what the
diagnosis engine calls. Series the workbench already names (``promql.SERIES``) are reused
through ``series``, so no query is written twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from jamey_engine.observability.promql import SERIES


@dataclass(frozen=True)
class EvidenceQuery:
    """One chartable series of evidence: ``name`` (the fact), a title, its PromQL template
    (``{sel}`` is the service's selector), the labels kept as columns, and its unit
    (``ratio``, ``seconds``, ``bytes``, ``per_second``, ``count``)."""

    name: str
    title: str
    template: str
    labels: tuple[str, ...] = ()
    unit: str = "count"
    series: str | None = None  # a promql.SERIES name to use instead of ``template``

    def expression(self, selector: str) -> str:
        """The PromQL for ``selector`` (the named series' own expression when ``series`` is set)."""
        if self.series is not None:
            return SERIES[self.series].build(selector, "5m", "1h")
        return self.template.replace("{sel}", selector)


def _named(
    name: str, title: str, series: str, labels: tuple[str, ...] = (), unit: str = "count"
) -> EvidenceQuery:
    return EvidenceQuery(name, title, "", labels, unit, series)


_UP = EvidenceQuery("up", "Scrape up (1) or down (0)", "max(up{{sel}})")
_ERRORS = _named("error_rate", "Share of API requests answered 5xx", "error_rate", unit="ratio")
_ERROR_ROUTES = EvidenceQuery(
    "errors_by_route",
    "5xx answers per second by route",
    'sum by (route) (rate(http_requests_total{{sel},status=~"5.."}[5m]))',
    ("route",),
    "per_second",
)
_LATENCY = _named("latency", "API latency p50/p95/p99", "latency_quantiles", ("quantile",), "seconds")
_ROUTE_LATENCY = EvidenceQuery(
    "mean_latency_by_route",
    "Mean request duration by route",
    'sum by (route) (rate(http_request_duration_seconds_sum{{sel},route!="/metrics"}[5m]))'
    ' / sum by (route) (rate(http_request_duration_seconds_count{{sel},route!="/metrics"}[5m]))',
    ("route",),
    "seconds",
)
_REQUESTS = EvidenceQuery(
    "request_rate", "Requests per second", "sum(rate(http_requests_total{{sel}}[5m]))", unit="per_second"
)
_LIMITED = _named(
    "rate_limited", "Requests refused by a rate limit per second", "rate_limited", ("scope",), "per_second"
)
_INDEX = _named("index_size", "Index bytes per layer", "index_size", ("layer",), "bytes")
_INDEX_GROWTH = EvidenceQuery(
    "index_growth_per_day",
    "Index growth per layer (bytes a day, from the last 6 hours)",
    "sum by (layer) (delta(memory_index_size_bytes{{sel}}[6h])) * 4",
    ("layer",),
    "bytes",
)
_WAL = EvidenceQuery(
    "wal_bytes",
    "Write-ahead log bytes per layer",
    "max by (layer) (memory_wal_bytes{{sel}})",
    ("layer",),
    "bytes",
)
_RETENTION_FAILURES = EvidenceQuery(
    "retention_consecutive_failures",
    "Retention runs failed in a row",
    "max(memory_retention_consecutive_failures{{sel}})",
)
_RETENTION_AGE = EvidenceQuery(
    "retention_success_age",
    "Seconds since retention last succeeded",
    "time() - max(memory_retention_last_success_timestamp_seconds{{sel}})",
    unit="seconds",
)
_BACKUP_AGE = _named("backup_age", "Seconds since the last successful backup", "backup_age", unit="seconds")
_BACKUP_COUNTS = _named(
    "backup_counts", "Backups by outcome in the preceding hour", "backup_counts", ("status",)
)
_MQTT = EvidenceQuery(
    "mqtt_connected", "Connected to the MQTT broker (1) or not (0)", "min(mqtt_connected{{sel}})"
)
_MQTT_FAILURES = EvidenceQuery(
    "mqtt_failures_15m",
    "MQTT connection failures in 15 minutes",
    "sum(increase(mqtt_connection_failures_total{{sel}}[15m]))",
)
_RSS = EvidenceQuery(
    "resident_memory", "Resident memory", "max(process_resident_memory_bytes{{sel}})", unit="bytes"
)
_CPU = EvidenceQuery(
    "cpu_cores", "CPU used (cores)", "sum(rate(process_cpu_seconds_total{{sel}}[5m]))", unit="ratio"
)
_DISK = EvidenceQuery(
    "disk_free_ratio",
    "Free share of the data dir's filesystem",
    "min(jamey_data_dir_free_bytes{{sel}} / jamey_data_dir_total_bytes{{sel}})",
    unit="ratio",
)
_DISK_FREE = EvidenceQuery(
    "disk_free_bytes",
    "Free bytes on the data dir's filesystem",
    "min(jamey_data_dir_free_bytes{{sel}})",
    unit="bytes",
)
_KEY_EXPIRY = EvidenceQuery(
    "key_expires_in",
    "Seconds until each expiring key expires",
    "min by (key_id, name) (api_key_expiry_timestamp_seconds{{sel}}) - time()",
    ("key_id", "name"),
    "seconds",
)
_RECEIVER = EvidenceQuery(
    "receiver_failures_15m",
    "Failed webhook deliveries by Alertmanager in 15 minutes",
    'sum by (receiver) (increase(alertmanager_notifications_failed_total{job="alertmanager",integration="webhook"}[15m]))',
    ("receiver",),
)

_SCHEDULE_FAILED = EvidenceQuery(
    "schedule_last_run_failed",
    "Schedules whose last run failed (1) or succeeded (0)",
    "max by (schedule, runbook) (runbook_schedule_last_run_failed{{sel}})",
    ("schedule", "runbook"),
)
_SCHEDULE_SUCCESS_AGE = EvidenceQuery(
    "schedule_success_age",
    "Seconds since each schedule's last successful run",
    "time() - max by (schedule, runbook) (runbook_schedule_last_success_timestamp_seconds{{sel}})",
    ("schedule", "runbook"),
    "seconds",
)

_OFFSITE_LAG = EvidenceQuery(
    "offsite_lag",
    "Seconds the newest backup is ahead of the newest off-site copy",
    "max(backup_last_success_timestamp_seconds{{sel}}) - max(backup_last_remote_success_timestamp_seconds{{sel}})",
    unit="seconds",
)
_REMOTE_FAILURES = EvidenceQuery(
    "remote_copy_failures_1h",
    "Failed off-site copies in the last hour",
    'sum(increase(backup_remote_copies_total{{sel},status="failure"}[1h]))',
)
_DRILL_AGE = EvidenceQuery(
    "drill_age",
    "Seconds since the last restore drill passed",
    "time() - max(backup_last_drill_success_timestamp_seconds{{sel}})",
    unit="seconds",
)

_BY_FAMILY: dict[str, tuple[EvidenceQuery, ...]] = {
    "service_down": (_UP, _RSS, _CPU),
    "error_rate": (_ERRORS, _ERROR_ROUTES, _REQUESTS),
    "latency": (_LATENCY, _ROUTE_LATENCY, _REQUESTS, _INDEX),
    "rate_limit_surge": (_LIMITED, _REQUESTS),
    "index_too_large": (_INDEX, _INDEX_GROWTH),
    "log_not_flushing": (_WAL, _INDEX),
    "retention_failing": (_RETENTION_FAILURES, _RETENTION_AGE, _INDEX),
    "backup_failed": (_BACKUP_COUNTS, _BACKUP_AGE, _DISK_FREE),
    "backup_too_old": (_BACKUP_AGE, _BACKUP_COUNTS, _DISK_FREE),
    "backup_never_succeeded": (_BACKUP_AGE, _BACKUP_COUNTS, _UP),
    "mqtt_disconnected": (_MQTT, _MQTT_FAILURES),
    "mqtt_connection_failures": (_MQTT_FAILURES, _MQTT),
    "memory": (_RSS, _REQUESTS, _INDEX),
    "cpu": (_CPU, _REQUESTS),
    "disk_nearly_full": (_DISK, _DISK_FREE, _INDEX),
    "key_expiring": (_KEY_EXPIRY,),
    "alert_receiver_failing": (_RECEIVER, _UP),
    "scheduled_runbook": (_SCHEDULE_FAILED, _SCHEDULE_SUCCESS_AGE),
    "backup_not_offsite": (_OFFSITE_LAG, _REMOTE_FAILURES, _BACKUP_AGE),
    "restore_drill_stale": (_DRILL_AGE, _BACKUP_AGE),
}

FAMILIES = tuple(_BY_FAMILY)


def queries_for(family: str) -> tuple[EvidenceQuery, ...]:
    """The evidence series of ``family`` (empty for a family without Prometheus evidence)."""
    return _BY_FAMILY.get(family, ())
