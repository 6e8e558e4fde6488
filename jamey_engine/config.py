"""Settings: every environment variable declared once, with its default and help.

``Settings.from_env(environ)`` parses a mapping (``os.environ`` by default, a dict in
tests) and fails fast with a ConfigError naming the variable and the bad value.
CLI flags override by passing ``overrides``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jamey_engine import ports, sizes
from jamey_engine.durations import parse_duration
from jamey_engine.errors import ConfigError, InvalidInput


@dataclass(frozen=True)
class Setting:
    """One environment variable: its attribute, default (as text) and help."""

    env: str
    attr: str
    default: str
    help: str
    parse: Callable[[str], Any]


def _text(value: str) -> str:
    return value


def _whole(value: str, rule: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(rule) from None


def _port(value: str) -> int:
    rule = "not a port between 1 and 65535"
    port = _whole(value, rule)
    if not 0 < port < 65536:
        raise ValueError(rule)
    return port


def _positive_int(value: str) -> int:
    rule = "must be a whole number above zero"
    number = _whole(value, rule)
    if number <= 0:
        raise ValueError(rule)
    return number


def _non_negative_int(value: str) -> int:
    rule = "must be a whole number, zero or above"
    number = _whole(value, rule)
    if number < 0:
        raise ValueError(rule)
    return number


def _optional_non_negative_int(value: str) -> int | None:
    if not value.strip():
        return None
    return _non_negative_int(value)


def _cores_or_positive_int(value: str) -> int:
    """A whole number above zero; empty means the number of CPU cores of this host."""
    if not value.strip():
        return max(1, os.cpu_count() or 1)
    return _positive_int(value)


def _optional_positive_int(value: str) -> int | None:
    if not value.strip():
        return None
    return _positive_int(value)


def _positive_float(value: str) -> float:
    rule = "must be a number above zero"
    try:
        number = float(value)
    except ValueError:
        raise ValueError(rule) from None
    if not number > 0 or number == float("inf"):  # also refuses nan
        raise ValueError(rule)
    return number


#: The words a true/false value may be written as, in a setting or a runbook parameter.
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _switch_interval_ms(value: str) -> float:
    number = _positive_float(value)
    if number > 100:
        raise ValueError("must be at most 100 (ms)")
    return number


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS or not lowered:  # an empty variable is unset: false
        return False
    raise ValueError("must be 1 or 0 (also true/false, yes/no, on/off)")


def _optional_duration(value: str) -> timedelta | None:
    if not value.strip():
        return None
    try:
        return parse_duration(value)
    except InvalidInput as err:
        raise ValueError(err.message) from None


def _duration(value: str) -> timedelta:
    result = _optional_duration(value)
    if result is None:
        raise ValueError("must not be empty")
    return result


def _rate_limit_at_most(most: str) -> Callable[[str], str]:
    """A parser of one rate limit such as 60/minute, allowing at most the ``most`` constant of
    limit_text.py per window."""

    def parse(value: str) -> str:
        from jamey_engine import limit_text

        cap = int(getattr(limit_text, most))
        try:
            item = limit_text.parse_limit(value)
        except InvalidInput:
            raise ValueError("not a rate limit such as 60/minute or 10/second") from None
        if item.amount > cap:
            raise ValueError(f"at most {cap:,} requests per window")
        return value

    return parse


def _storage_url(value: str) -> str:
    scheme = urlsplit(value).scheme
    if scheme not in {"memory", "redis", "rediss", "redis+unix"}:
        raise ValueError("must be memory:// or a redis:// URL")
    return value


def _approvals(value: str) -> tuple[str, ...]:
    from jamey_engine.plans.names import ACTIONS

    names = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
    unknown = [name for name in names if name not in ACTIONS]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not an action; use a comma list of: {', '.join(ACTIONS)}")
    return names


def _choice(*options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value.lower() not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value.lower()

    return parse


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


def _optional_http_url(value: str) -> str:
    return _http_url(value) if value.strip() else ""


def _optional_mqtt_url(value: str) -> str:
    if value and urlsplit(value).scheme not in {"mqtt", "mqtts"}:
        raise ValueError("must be empty (off) or an mqtt:// URL such as mqtt://127.0.0.1:1883")
    return value


# Settings whose value is a secret: never quoted in a message, and passed only to the processes
# that need them (:func:`child_environ`). URL settings may hold a password too: messages redact them.
SECRETS = frozenset({"JAMEY_KEY_PEPPER", "API_KEY"})

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "JAMEY_DATA_DIR",
        "data_dir",
        "./data",
        "Where the memory indexes, the SQLite database and (by default) backups live.",
        _text,
    ),
    Setting(
        "JAMEY_DATABASE_URL",
        "database_url",
        "",
        "SQLAlchemy URL of the key and audit database; empty means sqlite:///$JAMEY_DATA_DIR/jamey.db. PostgreSQL: postgresql+psycopg://user@host/db.",
        _text,
    ),
    Setting(
        "JAMEY_BACKUP_DIR",
        "backup_dir",
        "",
        "Where PhoenixVault writes backup archives; empty means $JAMEY_DATA_DIR/backups.",
        _text,
    ),
    Setting(
        "JAMEY_BACKUP_INTERVAL",
        "backup_interval",
        "",
        "How often the service takes a scheduled backup (e.g. 24h); empty turns the schedule off.",
        _optional_duration,
    ),
    Setting(
        "JAMEY_BACKUP_KEEP",
        "backup_keep",
        "7",
        "Retention after a scheduled backup: keep this many newest backups (0 keeps all).",
        _non_negative_int,
    ),
    Setting(
        "JAMEY_BACKUP_KEEP_DAYS",
        "backup_keep_days",
        "0",
        "Retention after a scheduled backup: also keep every backup younger than this many days (0: no age rule).",
        _non_negative_int,
    ),
    Setting(
        "JAMEY_BACKUP_KEEP_DAILY",
        "backup_keep_daily",
        "0",
        "Retention (restic's keep-daily): also keep the newest backup of each of this many last days that hold one (0: off).",
        _non_negative_int,
    ),
    Setting(
        "JAMEY_BACKUP_KEEP_WEEKLY",
        "backup_keep_weekly",
        "0",
        "Retention (restic's keep-weekly): also keep the newest backup of each of this many last ISO weeks that hold one (0: off).",
        _non_negative_int,
    ),
    Setting(
        "JAMEY_BACKUP_KEEP_MONTHLY",
        "backup_keep_monthly",
        "0",
        "Retention (restic's keep-monthly): also keep the newest backup of each of this many last months that hold one (0: off).",
        _non_negative_int,
    ),
    Setting(
        "JAMEY_BACKUP_REMOTE_KEEP",
        "backup_remote_keep",
        "",
        "JAMEY_BACKUP_KEEP for the copies on JAMEY_BACKUP_REMOTE; empty means the same as JAMEY_BACKUP_KEEP.",
        _optional_non_negative_int,
    ),
    Setting(
        "JAMEY_BACKUP_REMOTE_KEEP_DAYS",
        "backup_remote_keep_days",
        "",
        "JAMEY_BACKUP_KEEP_DAYS for the copies on JAMEY_BACKUP_REMOTE; empty means the same as JAMEY_BACKUP_KEEP_DAYS.",
        _optional_non_negative_int,
    ),
    Setting(
        "JAMEY_BACKUP_REMOTE_KEEP_DAILY",
        "backup_remote_keep_daily",
        "",
        "JAMEY_BACKUP_KEEP_DAILY for the copies on JAMEY_BACKUP_REMOTE; empty means the same as JAMEY_BACKUP_KEEP_DAILY.",
        _optional_non_negative_int,
    ),
    Setting(
        "JAMEY_BACKUP_REMOTE_KEEP_WEEKLY",
        "backup_remote_keep_weekly",
        "",
        "JAMEY_BACKUP_KEEP_WEEKLY for the copies on JAMEY_BACKUP_REMOTE; empty means the same as JAMEY_BACKUP_KEEP_WEEKLY.",
        _optional_non_negative_int,
    ),
    Setting(
        "JAMEY_BACKUP_REMOTE_KEEP_MONTHLY",
        "backup_remote_keep_monthly",
        "",
        "JAMEY_BACKUP_KEEP_MONTHLY for the copies on JAMEY_BACKUP_REMOTE; empty means the same as JAMEY_BACKUP_KEEP_MONTHLY.",
        _optional_non_negative_int,
    ),
    Setting(
        "JAMEY_RETENTION_INTERVAL",
        "retention_interval",
        "1h",
        "How often the service applies the memory layers' retention policies (e.g. 1h); empty turns the schedule off.",
        _optional_duration,
    ),
    Setting(
        "JAMEY_BACKUP_RECIPIENTS",
        "backup_recipients",
        "",
        "age public keys (age1..., comma or space separated), or the path of a file of them, one a line; when set, every backup is encrypted to them.",
        _text,
    ),
    Setting(
        "JAMEY_BACKUP_PASSPHRASE_FILE",
        "backup_passphrase_file",
        "",
        "File holding a passphrase; when set (and no recipients are), backups are age-encrypted with it, and restores decrypt with it.",
        _text,
    ),
    Setting(
        "JAMEY_BACKUP_IDENTITY_FILE",
        "backup_identity_file",
        "",
        "age identity file (AGE-SECRET-KEY-1... lines) that verify, restore and rekey decrypt encrypted backups with.",
        _text,
    ),
    Setting(
        "JAMEY_BACKUP_SIGNING_KEY_FILE",
        "backup_signing_key_file",
        "",
        "File holding the server key that signs every backup's manifest (HMAC-SHA256); generated 0600 on first use; must lie outside the backup directory; empty means $JAMEY_DATA_DIR/backup-signing.key. Keep a copy with the emergency kit.",
        _text,
    ),
    Setting(
        "JAMEY_BACKUP_REMOTE",
        "backup_remote",
        "",
        "rclone remote path that every backup (archive and sidecar) is copied to and checked on (name:bucket/path, or an on-the-fly :sftp,host=...:path); empty keeps backups local only. Put credentials in JAMEY_RCLONE_CONFIG, never here.",
        _text,
    ),
    Setting(
        "JAMEY_RCLONE_CONFIG",
        "rclone_config",
        "",
        "rclone configuration file (mode 0600) holding the remote's credentials; given to rclone through RCLONE_CONFIG, never logged or put on a command line.",
        _text,
    ),
    Setting(
        "JAMEY_ALLOW_SHARED_DATA_DIR",
        "allow_shared_data_dir",
        "0",
        "1 lets Jamey start on a data dir that group or others can access (access managed with groups); it still warns once.",
        _flag,
    ),
    Setting("JAMEY_HOST", "host", "127.0.0.1", "Address `jamey serve` binds to.", _text),
    Setting("JAMEY_PORT", "port", str(ports.SERVICE), "Port `jamey serve` listens on.", _port),
    Setting(
        "JAMEY_WORKERS",
        "workers",
        "1",
        "Service worker processes `jamey serve` runs on one port (more than 1 needs redis:// rate-limit storage).",
        _positive_int,
    ),
    Setting(
        "JAMEY_SERVER",
        "server",
        "uvicorn",
        "HTTP server `jamey serve` runs the service under: uvicorn or granian (docs/benchmarks.md compares them).",
        _choice("uvicorn", "granian"),
    ),
    Setting(
        "JAMEY_GC_FREEZE",
        "gc_freeze",
        "1",
        "1 moves the objects a service worker holds once started (modules, the app, caches) out of the garbage collector's reach after start-up, so its full collections walk only what requests create (docs/benchmarks.md, the GC pauses); the workbench does the same once its background import of plotly and pandas is done.",
        _flag,
    ),
    Setting(
        "JAMEY_GC_THRESHOLD",
        "gc_threshold",
        "",
        "Allocations between the service worker's young-generation collections (Python's gc threshold0); empty keeps Python's default.",
        _optional_positive_int,
    ),
    Setting(
        "JAMEY_SWITCH_INTERVAL_MS",
        "switch_interval_ms",
        "5",
        "How long a service worker's thread may hold the GIL while another waits for it, in ms (Python's own default, 5): 1 once halved the durable stores' p99 over HTTP, but since a log group wakes the event loop once it costs 4-9% of the CPU per store and leaves the p99 as it is (docs/benchmarks.md, the switch interval again); at most 100.",
        _switch_interval_ms,
    ),
    Setting(
        "JAMEY_DEFAULT_RATE_LIMIT",
        "default_rate_limit",
        "60/minute",
        "Rate limit of a key that has none of its own, and of the legacy API_KEY; at most 100,000 requests per window.",
        _rate_limit_at_most("MAX_KEY_LIMIT"),
    ),
    Setting(
        "JAMEY_GLOBAL_RATE_LIMIT",
        "global_rate_limit",
        "20000/second",
        "Limit over all keys together, checked after the key's own limit; the default sits about twice above one worker's measured capacity (see docs/benchmarks.md); at most 1,000,000 requests per window.",
        _rate_limit_at_most("MAX_GLOBAL_LIMIT"),
    ),
    Setting(
        "JAMEY_RATE_LIMIT_STORAGE",
        "rate_limit_storage",
        "memory://",
        "Where rate-limit counters live: memory:// (one process) or redis://host:6379 (shared).",
        _storage_url,
    ),
    Setting(
        "JAMEY_RATE_LIMIT_FAILURE",
        "rate_limit_failure",
        "open",
        "When the counter storage is unreachable: open (admit, and count it) or closed (refuse with 503).",
        _choice("open", "closed"),
    ),
    Setting(
        "JAMEY_RATE_LIMIT_LEASE",
        "rate_limit_lease",
        "100",
        "With redis:// counters: hits a process may reserve per lease and admit without a round trip (the lease shrinks near the limit, so no more than the limit is ever admitted); 0 asks Redis on every request.",
        _non_negative_int,
    ),
    Setting(
        "JAMEY_KEY_PEPPER",
        "key_pepper",
        "",
        "Server secret; when set, keys are stored as HMAC-SHA256 with it instead of plain SHA-256. Changing it invalidates every key.",
        _text,
    ),
    Setting(
        "JAMEY_KEY_CACHE_SECONDS",
        "key_cache_seconds",
        "2",
        "How long a verified key is trusted from the in-process cache: the bound on how late a revocation takes effect.",
        _positive_float,
    ),
    Setting(
        "JAMEY_KEY_NEGATIVE_CACHE_SECONDS",
        "key_negative_cache_seconds",
        "5",
        "How long a process trusts that a well-formed key is unknown (and its list of key ids under a flood of unknown keys): the bound on how late a key created or restored by another process starts to work there.",
        _positive_float,
    ),
    Setting(
        "JAMEY_METRICS_CACHE_SECONDS",
        "metrics_cache_seconds",
        "5",
        "How long /metrics reuses its reading of the memory layers and their write-ahead logs (0: read at every scrape).",
        _non_negative_int,
    ),
    Setting(
        "JAMEY_KEY_STALE_DAYS",
        "key_stale_days",
        "90",
        "A working key unused for this many days is flagged stale on the keys page and by `jamey keys stale`.",
        _positive_int,
    ),
    Setting(
        "JAMEY_KEY_ROTATE_DAYS",
        "key_rotate_days",
        "180",
        "A working key older than this many days (since it was created or last rotated) is flagged for rotation.",
        _positive_int,
    ),
    Setting(
        "JAMEY_MAX_CONTENT_BYTES",
        "max_content_bytes",
        "65536",
        "Largest memory content accepted, in UTF-8 bytes.",
        _positive_int,
    ),
    Setting(
        "JAMEY_MAX_BODY_BYTES",
        "max_body_bytes",
        str(sizes.MAX_BODY_BYTES),
        "Largest HTTP request body the service reads.",
        _positive_int,
    ),
    Setting(
        "JAMEY_LOCK_TIMEOUT",
        "lock_timeout",
        "10",
        "Seconds to wait for another process's index writer lock before failing with a clear error.",
        _positive_float,
    ),
    Setting(
        "JAMEY_WAL",
        "wal",
        "on",
        "Memory writes go to a per-layer write-ahead log (durable at the fsync, flushed into the index in the background); off: every store waits for an index commit.",
        _flag,
    ),
    Setting(
        "JAMEY_FLUSH_INTERVAL",
        "flush_interval",
        "1",
        "Seconds between background flushes of the write-ahead log into the index: with the flush's commit time, the bound on when another process sees a write.",
        _positive_float,
    ),
    Setting(
        "JAMEY_FLUSH_DOCS",
        "flush_docs",
        "10000",
        "A process flushes a layer's log early once it holds this many unflushed memories.",
        _positive_int,
    ),
    Setting(
        "JAMEY_FLUSHER",
        "flusher",
        "auto",
        "Who flushes the write-ahead log into the index: process (one flusher process per data dir, started and restarted by jamey serve; serving workers only append and search), inline (each process flushes its own writes on a background thread), auto (process under jamey serve, inline in the library and the CLI).",
        _choice("auto", "process", "inline"),
    ),
    Setting(
        "JAMEY_MQTT_URL",
        "mqtt_url",
        "",
        "MQTT broker for key, backup, restore and prune events (mqtt://host:1883); empty turns events off.",
        _optional_mqtt_url,
    ),
    Setting(
        "JAMEY_WORKBENCH_PORT",
        "workbench_port",
        str(ports.WORKBENCH),
        "Port of the Streamlit workbench started by `make run`.",
        _port,
    ),
    Setting(
        "JAMEY_PROMETHEUS_PORT",
        "prometheus_port",
        str(ports.PROMETHEUS),
        "Port of the Prometheus that `jamey stack` starts.",
        _port,
    ),
    Setting(
        "JAMEY_ALERTMANAGER_PORT",
        "alertmanager_port",
        str(ports.ALERTMANAGER),
        "Port of the Alertmanager that `jamey stack` starts.",
        _port,
    ),
    Setting(
        "JAMEY_STACK_TLS",
        "stack_tls",
        "0",
        "1 makes `jamey stack` also run nginx (TLS 1.3, a self-signed certificate under $JAMEY_DATA_DIR/tls) in front of the service and the workbench.",
        _flag,
    ),
    Setting(
        "JAMEY_NGINX_HTTPS_PORT",
        "nginx_https_port",
        str(ports.NGINX_HTTPS),
        "HTTPS port of the API through nginx under `jamey stack --tls`.",
        _port,
    ),
    Setting(
        "JAMEY_NGINX_HTTP_PORT",
        "nginx_http_port",
        str(ports.NGINX_HTTP),
        "Plain HTTP port of nginx under `jamey stack --tls`; it only redirects to HTTPS.",
        _port,
    ),
    Setting(
        "JAMEY_NGINX_WORKBENCH_PORT",
        "nginx_workbench_port",
        str(ports.NGINX_WORKBENCH),
        "HTTPS port of the workbench (websocket included) through nginx under `jamey stack --tls`.",
        _port,
    ),
    Setting(
        "JAMEY_WORKBENCH_IDLE_TIMEOUT",
        "workbench_idle_timeout",
        "30m",
        "A workbench session signs out after this long without activity.",
        _duration,
    ),
    Setting(
        "JAMEY_SERVICE_URL",
        "service_url",
        "",
        "Base URL of the Jamey service the workbench checks for health; empty means http://$JAMEY_HOST:$JAMEY_PORT.",
        _text,
    ),
    Setting(
        "JAMEY_WORKBENCH_URL",
        "workbench_url",
        "",
        "Base URL of the workbench, for links to it (alert rules' runbook_url); empty means http://127.0.0.1:$JAMEY_WORKBENCH_PORT.",
        _optional_http_url,
    ),
    Setting(
        "JAMEY_DOCS_URL",
        "docs_url",
        ports.local_url(ports.DOCS),
        "Base URL of the documentation site (`make docs-serve` serves it here); the workbench's Alerts page links each alert to its page there. Empty: no link.",
        _optional_http_url,
    ),
    Setting(
        "JAMEY_NOTEBOOKS_DIR",
        "notebooks_dir",
        "",
        "Where the runbook notebooks are; empty means the repository's notebooks/.",
        _text,
    ),
    Setting(
        "JAMEY_RUNBOOK_TIMEOUT",
        "runbook_timeout",
        "30m",
        "A runbook run that takes longer is stopped and marked failed.",
        _duration,
    ),
    Setting(
        "JAMEY_RUNBOOK_KEEP",
        "runbook_keep",
        "200",
        "Keep the files (executed notebook, HTML) of this many newest runbook runs; a running one is always kept.",
        _positive_int,
    ),
    Setting(
        "JAMEY_RUNS_MAX_ACTIVE",
        "runs_max_active",
        "",
        "At most this many runbook runs (each a runner and a Jupyter kernel) run at once on all hosts sharing the database; empty means the number of CPU cores. More wait queued.",
        _cores_or_positive_int,
    ),
    Setting(
        "JAMEY_RUNS_MAX_PER_ACTOR",
        "runs_max_per_actor",
        "2",
        "At most this many runbook runs of one key (or actor) run at once; its further runs wait queued.",
        _positive_int,
    ),
    Setting(
        "JAMEY_RUNS_MAX_QUEUED",
        "runs_max_queued",
        "20",
        "At most this many runbook runs wait queued; past it a new run is refused (HTTP 429 with Retry-After).",
        _non_negative_int,
    ),
    Setting(
        "PROMETHEUS_URL",
        "prometheus_url",
        ports.local_url(ports.PROMETHEUS),
        "Prometheus (or any PromQL-compatible store) the dashboards and notebooks query.",
        _http_url,
    ),
    Setting(
        "PROMETHEUS_TIMEOUT",
        "prometheus_timeout",
        "10",
        "Seconds before a Prometheus query gives up.",
        _positive_float,
    ),
    Setting(
        "ALERTMANAGER_URL",
        "alertmanager_url",
        ports.local_url(ports.ALERTMANAGER),
        "Alertmanager whose alerts and silences the Alerts page, the CLI and the notebooks show and change.",
        _http_url,
    ),
    Setting(
        "ALERTMANAGER_TIMEOUT",
        "alertmanager_timeout",
        "10",
        "Seconds before a request to Alertmanager gives up.",
        _positive_float,
    ),
    Setting(
        "JAMEY_ALERT_HISTORY_DAYS",
        "alert_history_days",
        "90",
        "Days of alert notifications (delivered by Alertmanager to the webhook) the database keeps.",
        _positive_int,
    ),
    Setting(
        "JAMEY_AUTO_DIAGNOSE",
        "auto_diagnose",
        "1",
        "Start an alert's diagnosis run (actor alertmanager) when the webhook receives a new firing alert; 0 turns it off.",
        _flag,
    ),
    Setting(
        "JAMEY_SYSTEMD_UNIT",
        "systemd_unit",
        "",
        "The systemd unit whose journal a diagnosis reads the service's log lines from (journalctl -u UNIT); empty: the unit of the process's cgroup when systemd started it, else the stack's log file.",
        _text,
    ),
    Setting(
        "JAMEY_APPROVALS",
        "approvals",
        "",
        "Comma list of actions whose plans need a second key's approval before they apply (e.g. restore,prune,dedupe,retention,backup-delete,key-revoke); empty: none. A team should list at least restore.",
        _approvals,
    ),
    Setting(
        "JAMEY_PLAN_TTL",
        "plan_ttl",
        "1h",
        "How long a plan (and its approval) stays valid; an older one is expired and must be planned again.",
        _duration,
    ),
    Setting(
        "JAMEY_LOG_LEVEL",
        "log_level",
        "INFO",
        "Log level of the service and CLI.",
        _choice("debug", "info", "warning", "error"),
    ),
    Setting(
        "API_KEY",
        "legacy_api_key",
        "",
        "Deprecated single key of the original service; still accepted with the default limit. Move it with `jamey keys import-legacy`.",
        _text,
    ),
)


@dataclass(frozen=True)
class Settings:
    """Parsed, validated settings. Build with ``Settings.from_env``."""

    data_dir: Path
    database_url: str
    backup_dir: Path
    backup_interval: timedelta | None
    backup_keep: int
    backup_keep_days: int
    backup_keep_daily: int
    backup_keep_weekly: int
    backup_keep_monthly: int
    backup_remote_keep: int | None
    backup_remote_keep_days: int | None
    backup_remote_keep_daily: int | None
    backup_remote_keep_weekly: int | None
    backup_remote_keep_monthly: int | None
    retention_interval: timedelta | None
    backup_recipients: str
    backup_passphrase_file: str
    backup_identity_file: str
    backup_signing_key_file: Path
    backup_remote: str
    rclone_config: str
    allow_shared_data_dir: bool
    host: str
    port: int
    workers: int
    server: str
    gc_freeze: bool
    gc_threshold: int | None
    switch_interval_ms: float
    default_rate_limit: str
    global_rate_limit: str
    rate_limit_storage: str
    rate_limit_failure: str
    rate_limit_lease: int
    key_pepper: str
    key_cache_seconds: float
    key_negative_cache_seconds: float
    metrics_cache_seconds: int
    key_stale_days: int
    key_rotate_days: int
    max_content_bytes: int
    max_body_bytes: int
    lock_timeout: float
    wal: bool
    flush_interval: float
    flush_docs: int
    flusher: str
    mqtt_url: str
    workbench_port: int
    prometheus_port: int
    alertmanager_port: int
    stack_tls: bool
    nginx_https_port: int
    nginx_http_port: int
    nginx_workbench_port: int
    workbench_idle_timeout: timedelta
    service_url: str
    workbench_url: str
    docs_url: str
    notebooks_dir: Path
    runbook_timeout: timedelta
    runbook_keep: int
    runs_max_active: int
    runs_max_per_actor: int
    runs_max_queued: int
    prometheus_url: str
    prometheus_timeout: float
    alertmanager_url: str
    alertmanager_timeout: float
    alert_history_days: int
    auto_diagnose: bool
    systemd_unit: str
    approvals: tuple[str, ...]
    plan_ttl: timedelta
    log_level: str
    legacy_api_key: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Parse settings from ``environ`` (default ``os.environ``); ``overrides`` win.

        Overrides are raw text keyed by attribute name (as CLI flags give them); ``None``
        means "not given". Raises ConfigError naming the first invalid variable.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            override = overrides.get(setting.attr)
            raw = str(override) if override is not None else env.get(setting.env, setting.default)
            try:
                values[setting.attr] = setting.parse(raw)
            except (ValueError, TypeError) as err:
                raise ConfigError(setting.env, None if setting.env in SECRETS else raw, str(err)) from None
        unknown = set(overrides) - {s.attr for s in SETTINGS}
        if unknown:
            raise InvalidInput(f"unknown setting override(s): {', '.join(sorted(unknown))}")
        data_dir = Path(values["data_dir"]).expanduser().absolute()
        values["data_dir"] = data_dir
        if not values["database_url"]:
            values["database_url"] = f"sqlite:///{data_dir / 'jamey.db'}"
        values["backup_dir"] = (
            Path(values["backup_dir"]).expanduser().absolute()
            if values["backup_dir"]
            else data_dir / "backups"
        )
        values["backup_signing_key_file"] = (
            Path(values["backup_signing_key_file"]).expanduser().absolute()
            if values["backup_signing_key_file"]
            else data_dir / "backup-signing.key"
        )
        if not values["workbench_url"]:
            values["workbench_url"] = f"http://127.0.0.1:{values['workbench_port']}"
        values["notebooks_dir"] = (
            Path(values["notebooks_dir"]).expanduser().absolute()
            if values["notebooks_dir"]
            else Path(__file__).resolve().parents[1] / "notebooks"
        )
        if not values["service_url"]:
            values["service_url"] = f"http://{values['host']}:{values['port']}"
        return cls(**values)

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some parsed attributes replaced (tests and front doors)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise InvalidInput(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes)

    def to_environ(self) -> dict[str, str]:
        """These settings as environment variables, so a child process (a runbook run) sees
        exactly the settings of its parent, CLI overrides included. Holds the key pepper: pass it
        to processes only, never log it."""
        environ: dict[str, str] = {}
        for setting in SETTINGS:
            value = getattr(self, setting.attr)
            if value is None:
                text = ""
            elif isinstance(value, timedelta):
                seconds = value.total_seconds()
                text = f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds}s"
            elif isinstance(value, tuple):
                text = ",".join(value)
            else:
                text = str(value)
            environ[setting.env] = text
        return environ

    @property
    def memory_dir(self) -> Path:
        """Where the five layer indexes live."""
        return self.data_dir / "memory"


def without_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the secret settings (the key pepper, the legacy API_KEY): the
    environment of a child that reads the data dir and database but never verifies a key (a
    runbook run and its kernel)."""
    return {name: value for name, value in environ.items() if name not in SECRETS}


def without_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without any Jamey setting (secrets, database URL, service URLs): the
    environment of a child that is not Jamey (Prometheus, Alertmanager, nginx under the stack)."""
    names = {setting.env for setting in SETTINGS}
    return {name: value for name, value in environ.items() if name not in names}
