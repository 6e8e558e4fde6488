"""The verdict of a diagnosis: one sentence per alert family, from the evidence gathered.

Each rule reads the named facts (``jamey_engine.runbooks.diagnosis`` gathers them: Prometheus
values at the time of the diagnosis, the operation log, the backups, the keys' usage) and says
what a person would conclude first. A fact that could not be read is None; every rule still
returns a sentence, saying what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from jamey_engine.durations import format_duration
from jamey_engine.observability.promql import BACKUP_AGE_THRESHOLD, ERROR_RATE_THRESHOLD, INDEX_SIZE_THRESHOLD
from jamey_engine.sizes import format_bytes

Facts = Mapping[str, Any]


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _ago(seconds: float) -> str:
    return format_duration(timedelta(seconds=max(1, round(seconds))))


def _bytes(value: float) -> str:
    return format_bytes(float(value))


def _top(mapping: Any) -> tuple[str, float] | None:
    """The largest entry of a {label: value} fact, or None."""
    if not isinstance(mapping, Mapping) or not mapping:
        return None
    name = max(mapping, key=lambda key: mapping[key])
    return str(name), float(mapping[name])


def _service_down(f: Facts) -> str:
    up = f.get("up")
    if up is None:
        return "Prometheus has no scrape of the service at all: it is not running, or Prometheus cannot reach it."
    if up >= 1:
        return "The service answers Prometheus' scrapes again (up=1): it was down or hung for a while; check its log for the restart."
    return "Prometheus cannot scrape the service (up=0): the process is gone, hung, or not listening."


def _error_rate(f: Facts) -> str:
    rate = f.get("error_rate")
    if rate is None:
        return "No request traffic is recorded, so the error rate cannot be judged."
    worst = _top(f.get("errors_by_route"))
    where = f", mostly on {worst[0]} ({worst[1]:.2f}/s)" if worst and worst[1] > 0 else ""
    state = (
        "fail"
        if rate > ERROR_RATE_THRESHOLD
        else f"fail, under the {_pct(ERROR_RATE_THRESHOLD)} threshold now,"
    )
    return f"{_pct(rate)} of API requests {state} with 5xx{where}."


def _latency(f: Facts) -> str:
    quantiles = f.get("latency") or {}
    p95 = quantiles.get("0.95") if isinstance(quantiles, Mapping) else None
    if p95 is None:
        return "No latency samples: the service answered no API request in the window."
    slow = _top(f.get("mean_latency_by_route"))
    where = f"; the slowest route is {slow[0]} (mean {slow[1]:.2f} s)" if slow else ""
    return f"p95 latency is {p95:.2f} s{where}."


def _rate_limit(f: Facts) -> str:
    limited = f.get("rate_limited") or {}
    total = sum(limited.values()) if isinstance(limited, Mapping) else 0.0
    if not total:
        return "No request is being refused by a rate limit now."
    scope = _top(limited)
    share = f" ({_pct(total / f['request_rate'])} of requests)" if f.get("request_rate") else ""
    key = f.get("key_most_429s")
    who = f"; key {key} took the most 429s" if key else ""
    return (
        f"{total:.2f} requests/s are refused{share}, mostly by the {scope[0] if scope else '?'} limit{who}."
    )


def _index(f: Facts) -> str:
    size = f.get("layer_index_size")
    layer = f.get("layer") or "?"
    if size is None:
        return f"No index size is recorded for layer {layer}."
    growth = f.get("layer_growth_per_day")
    grows = f", growing {_bytes(growth)} a day" if growth and growth > 0 else ""
    over = "over" if size > INDEX_SIZE_THRESHOLD else "under"
    return f"Layer {layer}'s index is {_bytes(size)} ({over} the {_bytes(INDEX_SIZE_THRESHOLD)} threshold){grows}: prune old memories."


def _wal(f: Facts) -> str:
    wal = f.get("wal_bytes") or {}
    worst = _top(wal)
    if worst is None:
        return "No write-ahead log size is recorded: the service may not be running."
    failures = f.get("failed_operations") or 0
    tail = f"; {failures} failed operation(s) in the last hours" if failures else ""
    return f"Layer {worst[0]}'s write-ahead log holds {_bytes(worst[1])}: flushes into the index are not keeping up{tail}."


def _retention(f: Facts) -> str:
    failures = f.get("retention_consecutive_failures")
    last = f.get("last_retention_error")
    if failures is None and last is None:
        return "No retention run is recorded; retention policies may not be set."
    why = f": {last}" if last else ""
    return f"Retention failed {int(failures or 0)} time(s) in a row{why}."


def _backup(f: Facts) -> str:
    error = f.get("last_backup_error")
    age = f.get("backup_age")
    count = f.get("backups") or 0
    if error:
        return f"The last backup failed: {error}."
    if age is None:
        return f"No backup has ever succeeded ({count} archive(s) in the backup directory): take one now."
    state = "too old" if age > BACKUP_AGE_THRESHOLD else "recent"
    return f"The last successful backup is {_ago(age)} old ({state}); {count} archive(s) in the backup directory."


def _mqtt(f: Facts) -> str:
    connected = f.get("mqtt_connected")
    failures = f.get("mqtt_failures_15m")
    count = f" ({failures:.0f} connection failures in 15 min)" if failures is not None else ""
    if connected is None:
        return f"No MQTT state is recorded: events may be disabled{count}."
    if connected >= 1:
        return f"The service is connected to the MQTT broker now{count}."
    return f"The service is disconnected from the MQTT broker{count}: check the broker at JAMEY_MQTT_URL."


def _memory(f: Facts) -> str:
    rss = f.get("resident_memory")
    if rss is None:
        return "No memory figure is recorded for the service."
    return f"The service's resident memory is {_bytes(rss)} (threshold 2 GiB)."


def _cpu(f: Facts) -> str:
    cores = f.get("cpu_cores")
    if cores is None:
        return "No CPU figure is recorded for the service."
    rate = f.get("request_rate")
    load = f" at {rate:.1f} requests/s" if rate is not None else ""
    return f"The service uses {_pct(cores)} of a core{load} (threshold 90%)."


def _disk(f: Facts) -> str:
    ratio = f.get("disk_free_ratio")
    if ratio is None:
        return "No disk figure is recorded for the data dir."
    free = f.get("disk_free_bytes")
    amount = f" ({_bytes(free)})" if free is not None else ""
    largest = f.get("largest_layer")
    tail = f"; the largest layer is {largest}" if largest else ""
    return f"The data dir's filesystem has {_pct(ratio)} free{amount}{tail}."


def _key(f: Facts) -> str:
    expiring = f.get("key_expires_in") or {}
    soonest = (
        min(expiring.items(), key=lambda item: item[1])
        if isinstance(expiring, Mapping) and expiring
        else None
    )
    if soonest is None:
        return "No key is about to expire now."
    return f"Key {soonest[0]} expires in {_ago(soonest[1])}: rotate it and hand the new key to its client."


def _receiver(f: Facts) -> str:
    failures = f.get("receiver_failures_15m") or {}
    total = sum(failures.values()) if isinstance(failures, Mapping) else 0.0
    key = f.get("webhook_key")
    key_text = f"; the webhook key is {key}" if key else ""
    if not total:
        return f"Alertmanager reports no failed webhook delivery in the last 15 minutes{key_text}."
    return f"Alertmanager failed {total:.0f} webhook deliveries in 15 minutes{key_text}."


def _scheduled_runbook(f: Facts) -> str:
    failed = _top(f.get("schedule_last_run_failed"))
    if failed is not None and failed[1] >= 1:
        return f"The last scheduled run of {failed[0]} failed: its error is in the run (Runbooks page)."
    oldest = _top(f.get("schedule_success_age"))
    if oldest is not None:
        return f"No scheduled run of {oldest[0]} succeeded for {_ago(oldest[1])}: its runs fail, or the service was down."
    return "No schedule reports a run yet: the schedule is new, paused, or the service is not running."


def _backup_not_offsite(f: Facts) -> str:
    lag = f.get("offsite_lag")
    failures = f.get("remote_copy_failures_1h")
    if lag is None:
        return "No backup has been copied off-site yet: check JAMEY_BACKUP_REMOTE, the rclone config and `jamey backup list`."
    tried = f"; {failures:.0f} copy attempt(s) failed in the last hour" if failures else ""
    return f"The newest backup is {_ago(lag)} ahead of the newest off-site copy{tried}."


def _restore_drill(f: Facts) -> str:
    age = f.get("drill_age")
    if age is None:
        return "No restore drill has passed yet: run the restore_drill runbook and read its verdict."
    return f"The last restore drill passed {_ago(age)} ago: the weekly drill is paused or failing."


RULES: dict[str, Callable[[Facts], str]] = {
    "service_down": _service_down,
    "error_rate": _error_rate,
    "latency": _latency,
    "rate_limit_surge": _rate_limit,
    "index_too_large": _index,
    "log_not_flushing": _wal,
    "retention_failing": _retention,
    "backup_failed": _backup,
    "backup_too_old": _backup,
    "backup_never_succeeded": _backup,
    "mqtt_disconnected": _mqtt,
    "mqtt_connection_failures": _mqtt,
    "memory": _memory,
    "cpu": _cpu,
    "disk_nearly_full": _disk,
    "key_expiring": _key,
    "alert_receiver_failing": _receiver,
    "scheduled_runbook": _scheduled_runbook,
    "backup_not_offsite": _backup_not_offsite,
    "restore_drill_stale": _restore_drill,
}


def verdict(family: str, facts: Facts) -> str:
    """One sentence on what ``facts`` say about an alert of ``family``; an unknown family gets a
    sentence saying no rule exists (never an error: a diagnosis always ends with a verdict)."""
    rule = RULES.get(family)
    if rule is None:
        return f"No diagnosis rule for the {family} family; the evidence below is what was gathered."
    return rule(facts)
