"""Prometheus metrics of the service, on a registry passed in (never the global default).

Two kinds live here:
- live counters the service updates as requests pass (``http_requests_total``,
  ``http_request_duration_seconds``, ``rate_limited_requests_total``,
  ``api_key_verifications_total``, ``http_fastpath_requests_total``);
- facts read from persisted state at scrape time by ``EngineCollector``: index sizes from the
  memory store, backup/restore/prune/retention history from the operation log in the database (so an
  operation run by the CLI, a notebook or the workbench shows here too), the MQTT publisher's
  state and the data dir's free space.

With several service workers (``jamey serve --workers N``), ``jamey serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start: the live counters then live in files
shared by the workers, and :meth:`ServiceMetrics.exposition` answers every scrape from a fresh
registry that sums them (``MultiProcessCollector``) beside the ``EngineCollector`` (shared state
already). What each process knows only of itself (MQTT and limiter failure counts, the MQTT
connection, CPU, memory and open files) is mirrored into shared metrics by
:meth:`ServiceMetrics.sync_process_state` (at each scrape and every 2 s): counters summed over
every worker that ever ran, ``process_resident_memory_bytes`` and ``process_open_fds`` summed
over live workers, ``mqtt_connected`` the minimum over live workers.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from jamey_engine.errors import REJECT_REASONS
from jamey_engine.oplog import STATUSES as OPERATION_STATUSES

if TYPE_CHECKING:
    from jamey_engine.engine import Engine

log = logging.getLogger(__name__)

#: The ``result`` label of ``api_key_verifications_total``: accepted, or why it was refused.
VERIFICATION_RESULTS = ("ok", *REJECT_REASONS)
RATE_LIMIT_SCOPES = ("key", "global")
# Buckets from 5 ms to 10 s: the seed's p95 alert threshold (1 s) sits inside the range.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    """The shared metrics directory when this process is one of several workers, else None."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


_FDATASYNCS_HELP = (
    "Group commits to the memory layers' write-ahead logs by the service: one write and one "
    "fdatasync each (stores per commit = stored memories / this)."
)


def _log_fdatasyncs(engine: Engine) -> int:
    """This process's group commits (0 before its memory store is opened: none yet)."""
    memory = engine.__dict__.get("memory")
    return memory.logs.fdatasyncs() if memory is not None else 0


@dataclass
class ProcessMirror:
    """Shared (multiprocess) copies of what one worker knows only of itself."""

    engine: Engine
    counters: dict[str, Counter]
    gauges: dict[str, Gauge]
    seen: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _local(self) -> dict[str, float]:
        events = self.engine.events
        limiter = self.engine.__dict__.get("limiter")
        values = {
            "mqtt_connection_failures": float(events.connection_failures),
            "mqtt_events_dropped": float(events.dropped),
            "rate_limit_storage_failures": float(getattr(limiter, "storage_failures", 0)),
            "mqtt_connected": 1.0 if events.connected else 0.0,
            "memory_wal_fdatasyncs": float(_log_fdatasyncs(self.engine)),
        }
        for family in ProcessCollector(registry=None).collect():
            for sample in family.samples:
                values[sample.name] = sample.value
        return values

    def sync(self) -> None:
        """Add this worker's counter increments since the last sync; set its gauges."""
        with self.lock:
            values = self._local()
            for name, counter in self.counters.items():
                value = values.get(name, 0.0)
                delta = value - self.seen.get(name, 0.0)
                if delta > 0:
                    counter.inc(delta)
                    self.seen[name] = value
            for name, gauge in self.gauges.items():
                if name in values:
                    gauge.set(values[name])


@dataclass
class ServiceMetrics:
    """The registry and the live metric objects the service updates.

    ``registry`` holds this process's own metrics (tests read samples from it). ``exposition()``
    is what ``/metrics`` answers: the registry itself with one worker, the sum over every worker
    (plus shared state) with several.
    """

    registry: CollectorRegistry
    http_requests: Counter
    http_duration: Histogram
    rate_limited: Counter
    key_verifications: Counter
    fastpath_requests: Counter
    engine: Engine | None = None
    mirror: ProcessMirror | None = None
    shared: EngineCollector | None = None

    def sync_process_state(self) -> None:
        """Several workers: copy this worker's own counts into the shared metrics (else nothing).
        Never raises (a failure is logged; the next sync catches up)."""
        if self.mirror is None:
            return
        try:
            self.mirror.sync()
        except Exception as err:
            log.warning("metrics: cannot share this worker's counts (%s: %s)", type(err).__name__, err)

    def exposition(self) -> bytes:
        """The Prometheus text exposition ``/metrics`` answers."""
        if self.mirror is None or self.engine is None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        self.sync_process_state()
        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape)
        if self.shared is None:  # kept across scrapes, so its cache lasts
            self.shared = EngineCollector(self.engine, per_process=False)
        scrape.register(self.shared)
        return generate_latest(scrape)


class EngineCollector(Collector):
    """Reads persisted state at scrape time; one failing source never fails the whole scrape.

    A scrape writes nothing to the database (no reaping of dead runs, no expiry events: the
    service's other work does those). The memory layers, their write-ahead logs and the disk are
    read at most once every ``cache_seconds`` (JAMEY_METRICS_CACHE_SECONDS): those read every log
    segment and flush the logs, so the unauthenticated ``/metrics`` costs that once per few
    seconds however often it is asked. The database counters are read at every scrape.
    """

    def __init__(self, engine: Engine, per_process: bool = True, cache_seconds: float | None = None) -> None:
        self.engine = engine
        # False with several workers: the MQTT and limiter counts then come from ProcessMirror.
        self.per_process = per_process
        self.cache_seconds = engine.settings.metrics_cache_seconds if cache_seconds is None else cache_seconds
        self._cached: tuple[float, list[Metric]] | None = None
        self._cache_lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        """Yield the memory, operation-log, MQTT and disk families (skipping any source that fails)."""
        yield from self._expensive()
        sources = [
            self._operations,
            self._retention,
            self._keys,
            self._alerts,
            self._runbooks,
            self._schedules,
            self._plans,
        ]
        if self.per_process:
            sources += [self._mqtt, self._limiter, self._log_writes]
        yield from self._read(sources)

    def _expensive(self) -> Iterator[Metric]:
        """The memory and disk families, read again once ``cache_seconds`` have passed (read as
        they are asked for when the cache is off)."""
        sources = [self._memory_logs, self._memory, self._disk]
        if self.cache_seconds <= 0:
            yield from self._read(sources)
            return
        with self._cache_lock:
            cached = self._cached
            if cached is None or time.monotonic() - cached[0] >= self.cache_seconds:
                cached = (time.monotonic(), list(self._read(sources)))
                self._cached = cached
        yield from cached[1]

    def _read(self, sources: list[Callable[[], Iterator[Metric]]]) -> Iterator[Metric]:
        for source in sources:
            try:
                families = list(source())
            except Exception as err:
                log.warning(
                    "metrics: %s unavailable (%s: %s)", source.__name__.strip("_"), type(err).__name__, err
                )
                continue
            yield from families

    def _memory(self) -> Iterator[Metric]:
        sizes = self.engine.memory.sizes()
        size = GaugeMetricFamily(
            "memory_index_size_bytes", "Bytes on disk of each memory layer's index.", labels=["layer"]
        )
        docs = GaugeMetricFamily("memory_documents", "Documents in each memory layer.", labels=["layer"])
        for layer, layer_size in sizes.layers.items():
            size.add_metric([layer], float(layer_size.bytes))
            docs.add_metric([layer], float(layer_size.documents))
        yield size
        yield docs

    def _memory_logs(self) -> Iterator[Metric]:
        """The layers' write-ahead logs, read from their files: every process's writes count."""
        from jamey_engine.memory import LAYERS
        from jamey_engine.memory.wal import LayerLog

        size = GaugeMetricFamily(
            "memory_wal_bytes",
            "Bytes in each memory layer's write-ahead log (not yet flushed).",
            labels=["layer"],
        )
        records = GaugeMetricFamily(
            "memory_wal_records", "Records in each memory layer's write-ahead log.", labels=["layer"]
        )
        flushes = CounterMetricFamily(
            "memory_wal_flushes", "Flushes of the log into the index, by any process.", labels=["layer"]
        )
        seconds = CounterMetricFamily(
            "memory_wal_flush_seconds",
            "Time spent flushing the log into the index, by any process.",
            labels=["layer"],
        )
        last = GaugeMetricFamily(
            "memory_wal_last_flush_duration_seconds", "Duration of the layer's last flush.", labels=["layer"]
        )
        damaged = CounterMetricFamily(
            "memory_log_damaged_records",
            "Full-length log records that failed their checksum (damage at rest), set aside beside "
            "their segment as <segment>.damaged-<offset>.",
            labels=["layer"],
        )
        root = self.engine.settings.memory_dir
        for layer in LAYERS:
            wal = LayerLog(root / layer, layer, 1.0)
            state = wal.flush_state()
            damaged.add_metric([layer], state.get("damaged", 0.0))
            size.add_metric([layer], float(wal.active_bytes()))
            records.add_metric([layer], float(wal.record_count()))
            flushes.add_metric([layer], state.get("flushes", 0.0))
            seconds.add_metric([layer], state.get("seconds", 0.0))
            last.add_metric([layer], state.get("last_seconds", 0.0))
        yield from (size, records, flushes, seconds, last, damaged)

    def _operations(self) -> Iterator[Metric]:
        from jamey_engine.oplog import operation_summary

        summary = operation_summary(self.engine.db)
        pruned = CounterMetricFamily(
            "memory_pruned_documents", "Documents deleted by prune, by any process.", labels=["layer"]
        )
        from jamey_engine.memory import LAYERS

        for layer in sorted(set(LAYERS) | set(summary.pruned_documents)):
            pruned.add_metric([layer], float(summary.pruned_documents.get(layer, 0)))
        yield pruned
        for kind, help_text in (("backup", "Backups taken"), ("restore", "Restores run")):
            family = CounterMetricFamily(
                f"{kind}_operations", f"{help_text}, by any process, by outcome.", labels=["status"]
            )
            for status in OPERATION_STATUSES:
                family.add_metric([status], float(summary.counts.get((kind, status), 0)))
            yield family
        duration = summary.last_duration_seconds.get("backup")
        if duration is not None:
            yield GaugeMetricFamily("backup_duration_seconds", "Duration of the last backup.", value=duration)
        size = summary.last_size_bytes.get("backup")
        if size is not None:
            yield GaugeMetricFamily(
                "backup_size_bytes", "Size of the last backup archive.", value=float(size)
            )
        copies = CounterMetricFamily(
            "backup_remote_copies",
            "Off-site copies of backups to JAMEY_BACKUP_REMOTE (copied and checked), by any process, by outcome.",
            labels=["status"],
        )
        for status in OPERATION_STATUSES:
            copies.add_metric([status], float(summary.counts.get(("offsite", status), 0)))
        yield copies
        yield GaugeMetricFamily(
            "backup_remote_configured",
            "1 when JAMEY_BACKUP_REMOTE is set (backups are copied off-site), else 0.",
            value=1.0 if self.engine.settings.backup_remote else 0.0,
        )
        remote = summary.last_success_timestamp.get("offsite")
        if remote is not None:
            yield GaugeMetricFamily(
                "backup_last_remote_success_timestamp_seconds",
                "Unix time of the last backup copied to, and checked on, the remote.",
                value=float(remote),
            )
        from jamey_engine.vault.safety import drills_enabled

        yield GaugeMetricFamily(
            "backup_drills_enabled",
            "1 when a restore_drill runbook schedule is enabled (not paused), else 0.",
            value=1.0 if drills_enabled(self.engine.db) else 0.0,
        )
        drilled = summary.last_success_timestamp.get("drill")
        if drilled is not None:  # absent until the first restore drill passes
            yield GaugeMetricFamily(
                "backup_last_drill_success_timestamp_seconds",
                "Unix time of the last restore drill that passed (a backup restored into scratch and checked).",
                value=float(drilled),
            )
        last = summary.last_success_timestamp.get("backup")
        if last is not None:  # absent until the first backup succeeds
            yield GaugeMetricFamily(
                "backup_last_success_timestamp_seconds",
                "Unix time of the last successful backup.",
                value=float(last),
            )

    def _keys(self) -> Iterator[Metric]:
        from jamey_engine.keys.usage import totals_for_metrics

        requests = CounterMetricFamily(
            "api_key_requests",
            "Requests answered per API key (its public id) by outcome, by every service process.",
            labels=["key_id", "outcome"],
        )
        for row in totals_for_metrics(self.engine.db):
            failed = row.rate_limited + row.client_errors + row.server_errors
            for outcome, value in (
                ("ok", row.requests - failed),
                ("rate_limited", row.rate_limited),
                ("client_error", row.client_errors),
                ("server_error", row.server_errors),
            ):
                requests.add_metric([row.key_id, outcome], float(value))
        yield requests
        expiry = GaugeMetricFamily(
            "api_key_expiry_timestamp_seconds",
            "Unix time at which a working API key expires (keys without an expiry are absent).",
            labels=["key_id", "name"],
        )
        for info in self.engine.keys.list(record_expiries=False):
            if info.status in ("active", "expiring") and info.expires_at is not None:
                expiry.add_metric([info.id, info.name], info.expires_at.timestamp())
        yield expiry

    def _alerts(self) -> Iterator[Metric]:
        from jamey_engine.observability.alert_history import notification_counts

        family = CounterMetricFamily(
            "alert_notifications_received",
            "Alert notifications Alertmanager delivered to the webhook (stored once each), by status.",
            labels=["status"],
        )
        for status, count in notification_counts(self.engine.db).items():
            family.add_metric([status], float(count))
        yield family

    def _retention(self) -> Iterator[Metric]:
        from jamey_engine.retention import retention_summary

        summary = retention_summary(self.engine.db)
        deleted = CounterMetricFamily(
            "memory_retention_deleted",
            "Memories deleted by retention policies, by any process, by layer.",
            labels=["layer"],
        )
        for layer, count in sorted(summary.deleted.items()):
            deleted.add_metric([layer], float(count))
        yield deleted
        runs = CounterMetricFamily(
            "memory_retention_runs", "Retention runs (scheduled or by hand), by outcome.", labels=["status"]
        )
        for status in OPERATION_STATUSES:
            runs.add_metric([status], float(summary.runs.get(status, 0)))
        yield runs
        if summary.last_success is not None:  # absent until the first run succeeds
            yield GaugeMetricFamily(
                "memory_retention_last_success_timestamp_seconds",
                "Unix time of the last successful retention run.",
                value=summary.last_success,
            )
        yield GaugeMetricFamily(
            "memory_retention_consecutive_failures",
            "Retention runs that failed since the last successful one.",
            value=float(summary.consecutive_failures),
        )
        yield GaugeMetricFamily(
            "memory_retention_configured",
            "1 when at least one layer has a retention policy.",
            value=1.0 if summary.configured else 0.0,
        )
        interval = self.engine.settings.retention_interval
        yield GaugeMetricFamily(
            "memory_retention_interval_seconds",
            "JAMEY_RETENTION_INTERVAL of this service (0: the schedule is off).",
            value=interval.total_seconds() if interval is not None else 0.0,
        )

    def _plans(self) -> Iterator[Metric]:
        from jamey_engine.plans.store import pending_approval_count

        yield GaugeMetricFamily(
            "plans_pending_approval",
            "Plans waiting for a second key's approval (unexpired), by any process.",
            value=float(pending_approval_count(self.engine.db)),
        )

    def _runbooks(self) -> Iterator[Metric]:
        from jamey_engine.runbooks.runs import run_stats

        stats = run_stats(self.engine.db, reap_dead=False)
        total = CounterMetricFamily(
            "runbook_runs",
            "Runbook runs, by any process, by runbook and status.",
            labels=["runbook", "status"],
        )
        for (runbook, status), number in sorted(stats.counts.items()):
            total.add_metric([runbook, status], float(number))
        yield total
        duration = GaugeMetricFamily(
            "runbook_run_duration_seconds",
            "Duration of each runbook's last finished run.",
            labels=["runbook"],
        )
        for runbook, seconds in sorted(stats.last_duration_seconds.items()):
            duration.add_metric([runbook], seconds)
        yield duration
        yield GaugeMetricFamily(
            "runbook_runs_active",
            "Runbook runs holding a slot under JAMEY_RUNS_MAX_ACTIVE (claimed or running), by any process.",
            value=float(stats.active),
        )
        yield GaugeMetricFamily(
            "runbook_runs_queued",
            "Runbook runs waiting for a slot now (at most JAMEY_RUNS_MAX_QUEUED), by any process.",
            value=float(stats.waiting),
        )

    def _schedules(self) -> Iterator[Metric]:
        from jamey_engine.observability.schedule_metrics import schedule_families

        yield from schedule_families(self.engine.db)

    def _mqtt(self) -> Iterator[Metric]:
        events = self.engine.events
        yield CounterMetricFamily(
            "mqtt_connection_failures",
            "Failed MQTT connection attempts and lost connections.",
            value=float(events.connection_failures),
        )
        yield CounterMetricFamily(
            "mqtt_events_dropped", "Events dropped (queue full or unencodable).", value=float(events.dropped)
        )
        if events.enabled:  # with events off there is no connection to alert on
            yield GaugeMetricFamily(
                "mqtt_connected",
                "1 while connected to the MQTT broker.",
                value=1.0 if events.connected else 0.0,
            )

    def _log_writes(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "memory_wal_fdatasyncs", _FDATASYNCS_HELP, value=float(_log_fdatasyncs(self.engine))
        )

    def _limiter(self) -> Iterator[Metric]:
        limiter = self.engine.__dict__.get("limiter")  # only once the service has built it
        failures = getattr(limiter, "storage_failures", 0)
        yield CounterMetricFamily(
            "rate_limit_storage_failures",
            "Rate-limit checks that could not reach the counter storage (Redis).",
            value=float(failures),
        )

    def _disk(self) -> Iterator[Metric]:
        usage = shutil.disk_usage(self.engine.settings.data_dir)
        yield GaugeMetricFamily(
            "jamey_data_dir_free_bytes", "Free bytes on the data dir's filesystem.", value=usage.free
        )
        yield GaugeMetricFamily(
            "jamey_data_dir_total_bytes", "Size in bytes of the data dir's filesystem.", value=usage.total
        )


def build_metrics(engine: Engine) -> ServiceMetrics:
    """A fresh registry with every service metric, the engine collector and process metrics."""
    registry = CollectorRegistry()
    http_requests = Counter(
        "http_requests",
        "HTTP requests answered, by method, route template and status.",
        ["method", "route", "status"],
        registry=registry,
    )
    http_duration = Histogram(
        "http_request_duration_seconds",
        "Time to answer an HTTP request, by method and route template.",
        ["method", "route"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    rate_limited = Counter(
        "rate_limited_requests",
        "Requests refused by a rate limit, by scope (key or global).",
        ["scope"],
        registry=registry,
    )
    key_verifications = Counter(
        "api_key_verifications", "API key checks, by result.", ["result"], registry=registry
    )
    fastpath_requests = Counter(
        "http_fastpath_requests",
        "Requests the fast path answered itself (not handed on to the FastAPI route), by route template.",
        ["route"],
        registry=registry,
    )
    for scope in RATE_LIMIT_SCOPES:
        rate_limited.labels(scope)
    for result in VERIFICATION_RESULTS:
        key_verifications.labels(result)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    registry.register(EngineCollector(engine))
    mirror = None
    if multiprocess_dir() is not None:
        mirror = _process_mirror(engine)
    return ServiceMetrics(
        registry,
        http_requests,
        http_duration,
        rate_limited,
        key_verifications,
        fastpath_requests,
        engine,
        mirror,
    )


def _process_mirror(engine: Engine) -> ProcessMirror:
    """Shared metrics for per-process facts (registered in a throwaway registry: the scrape
    reads them from the multiprocess files, and the local registry already has the local ones)."""
    shadow = CollectorRegistry()
    counters = {
        "mqtt_connection_failures": Counter(
            "mqtt_connection_failures",
            "Failed MQTT connection attempts and lost connections.",
            registry=shadow,
        ),
        "mqtt_events_dropped": Counter(
            "mqtt_events_dropped", "Events dropped (queue full or unencodable).", registry=shadow
        ),
        "rate_limit_storage_failures": Counter(
            "rate_limit_storage_failures",
            "Rate-limit checks that could not reach the counter storage (Redis).",
            registry=shadow,
        ),
        "process_cpu_seconds_total": Counter(
            "process_cpu_seconds", "CPU seconds of every service worker, together.", registry=shadow
        ),
        "memory_wal_fdatasyncs": Counter("memory_wal_fdatasyncs", _FDATASYNCS_HELP, registry=shadow),
    }
    gauges = {
        "process_resident_memory_bytes": Gauge(
            "process_resident_memory_bytes",
            "Resident memory of the live service workers, together.",
            registry=shadow,
            multiprocess_mode="livesum",
        ),
        "process_open_fds": Gauge(
            "process_open_fds",
            "Open file descriptors of the live service workers, together.",
            registry=shadow,
            multiprocess_mode="livesum",
        ),
    }
    if engine.events.enabled:  # with events off there is no connection to alert on
        gauges["mqtt_connected"] = Gauge(
            "mqtt_connected",
            "1 while every live worker is connected to the MQTT broker.",
            registry=shadow,
            multiprocess_mode="livemin",
        )
    return ProcessMirror(engine, counters, gauges)


def build_registry(engine: Engine) -> CollectorRegistry:
    """The contract's entry point: ``build_metrics(engine).registry``."""
    return build_metrics(engine).registry
