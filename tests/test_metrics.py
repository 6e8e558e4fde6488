"""The metrics registry: fresh per app, and the collector reading persisted state at scrape time."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from helpers import closed_port
from prometheus_client import REGISTRY, generate_latest

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.observability.metrics import build_metrics, build_registry
from jamey_engine.oplog import record_operation

MQTT_URL = os.environ.get("JAMEY_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


def value(registry: object, name: str, labels: dict[str, str] | None = None) -> float | None:
    return registry.get_sample_value(name, labels or {})  # type: ignore[attr-defined,no-any-return]


def test_each_registry_is_fresh_and_separate_from_the_global_one(engine: Engine) -> None:
    first = build_metrics(engine)
    second = build_metrics(engine)
    first.http_requests.labels("GET", "/health", "200").inc()
    assert (
        value(first.registry, "http_requests_total", {"method": "GET", "route": "/health", "status": "200"})
        == 1
    )
    assert (
        value(second.registry, "http_requests_total", {"method": "GET", "route": "/health", "status": "200"})
        is None
    )
    assert (
        REGISTRY.get_sample_value(
            "http_requests_total", {"method": "GET", "route": "/health", "status": "200"}
        )
        is None
    )


def test_zero_valued_series_exist_before_anything_happens(engine: Engine) -> None:
    registry = build_registry(engine)
    for scope in ("key", "global"):
        assert value(registry, "rate_limited_requests_total", {"scope": scope}) == 0
    for result in ("ok", "missing", "malformed", "unknown", "expired", "revoked"):
        assert value(registry, "api_key_verifications_total", {"result": result}) == 0
    for status in ("success", "failure"):
        assert value(registry, "backup_operations_total", {"status": status}) == 0
        assert value(registry, "restore_operations_total", {"status": status}) == 0
    assert value(registry, "backup_last_success_timestamp_seconds") is None  # absent until a backup succeeds


def test_memory_sizes_are_read_at_scrape_time(engine: Engine) -> None:
    registry = build_registry(engine)
    assert value(registry, "memory_documents", {"layer": "working"}) == 0
    engine.memory.store("working", "one")
    engine.memory.store("working", "two")
    assert value(registry, "memory_documents", {"layer": "working"}) == 2
    size = value(registry, "memory_index_size_bytes", {"layer": "working"})
    assert size is not None and size > 0
    for layer in ("short_term", "long_term", "episodic", "semantic"):
        assert value(registry, "memory_documents", {"layer": layer}) == 0


def test_the_write_ahead_logs_of_any_process_are_read_at_scrape_time(
    engine: Engine, settings: Settings
) -> None:
    from jamey_engine.memory import MemoryStore

    registry = build_registry(engine)
    assert value(registry, "memory_wal_bytes", {"layer": "episodic"}) == 0
    other = MemoryStore(settings.memory_dir, flush_interval=3600)  # another process, not yet flushed
    try:
        other.store_batch("episodic", ["one", "two"])
        other.store("episodic", "three")
        assert value(registry, "memory_wal_records", {"layer": "episodic"}) == 2
        logged = value(registry, "memory_wal_bytes", {"layer": "episodic"})
        assert logged is not None and logged > 0
        assert value(registry, "memory_wal_flushes_total", {"layer": "episodic"}) == 0
        other.flush()
        assert value(registry, "memory_wal_bytes", {"layer": "episodic"}) == 0
        assert value(registry, "memory_wal_records", {"layer": "episodic"}) == 0
        assert value(registry, "memory_wal_flushes_total", {"layer": "episodic"}) == 1
        seconds = value(registry, "memory_wal_flush_seconds_total", {"layer": "episodic"})
        assert seconds is not None and seconds > 0
        assert value(registry, "memory_wal_last_flush_duration_seconds", {"layer": "episodic"}) == seconds
    finally:
        other.close()


def test_each_group_commit_to_a_log_counts_one_fdatasync(engine: Engine) -> None:
    registry = build_registry(engine)
    assert value(registry, "memory_wal_fdatasyncs_total") == 0
    engine.memory.store("working", "one")  # a store alone is its own group commit
    engine.memory.store("episodic", "two")
    engine.memory.store_batch("working", ["three", "four", "five"])  # a batch is one record
    assert value(registry, "memory_wal_fdatasyncs_total") == 3
    engine.memory.flush()  # flushing into the index appends nothing
    assert value(registry, "memory_wal_fdatasyncs_total") == 3


def test_operations_recorded_by_another_engine_show_at_the_next_scrape(settings: Settings) -> None:
    service = Engine(settings)
    other = Engine(settings)  # another front door on the same data dir and database
    try:
        registry = build_registry(service)
        assert value(registry, "memory_pruned_documents_total", {"layer": "episodic"}) == 0
        before = time.time()
        record_operation(other.db, "backup", "success", 2.5, size_bytes=4096)
        record_operation(other.db, "backup", "failure", 0.1, detail="disk full")
        record_operation(other.db, "restore", "success", 1.0)
        record_operation(other.db, "prune", "success", 0.3, layer="episodic", count=7, size_bytes=100)
        record_operation(other.db, "prune", "success", 0.3, layer="episodic", count=5, size_bytes=100)
        assert value(registry, "backup_operations_total", {"status": "success"}) == 1
        assert value(registry, "backup_operations_total", {"status": "failure"}) == 1
        assert value(registry, "restore_operations_total", {"status": "success"}) == 1
        assert value(registry, "backup_duration_seconds") == 2.5
        assert value(registry, "backup_size_bytes") == 4096
        last = value(registry, "backup_last_success_timestamp_seconds")
        assert last is not None and before - 1 <= last <= time.time() + 1
        assert value(registry, "memory_pruned_documents_total", {"layer": "episodic"}) == 12
    finally:
        other.close()
        service.close()


def test_plans_pending_approval_is_read_from_the_database_at_scrape_time(settings: Settings) -> None:
    from jamey_engine.plans import Actor, approve, plan

    service = Engine(settings)
    other = Engine(settings.with_overrides(approvals=("backup-delete",)))  # another front door
    try:
        registry = build_registry(service)
        assert value(registry, "plans_pending_approval") == 0
        backup = other.vault.create()
        first = plan(other, "backup-delete", {"backup_id": backup.id}, Actor.cli())
        plan(other, "backup-delete", {"backup_id": backup.id}, Actor.cli())
        assert value(registry, "plans_pending_approval") == 2
        approve(other, first.id, Actor("bob", ("admin",), "bobkey"), "fine")
        assert value(registry, "plans_pending_approval") == 1
    finally:
        other.close()
        service.close()


def test_disk_gauges_describe_the_data_dir_filesystem(engine: Engine) -> None:
    registry = build_registry(engine)
    usage = shutil.disk_usage(engine.settings.data_dir)
    free = value(registry, "jamey_data_dir_free_bytes")
    total = value(registry, "jamey_data_dir_total_bytes")
    assert total == usage.total
    assert free is not None and abs(free - usage.free) < 512 * 1024 * 1024


def test_process_metrics_are_exposed(engine: Engine) -> None:
    text = generate_latest(build_registry(engine)).decode()
    assert "process_resident_memory_bytes" in text
    assert "python_info" in text


def test_mqtt_gauges_follow_the_publisher(data_dir: Path) -> None:
    off = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    down = Engine(
        Settings.from_env(
            {"JAMEY_DATA_DIR": str(data_dir), "JAMEY_MQTT_URL": f"mqtt://127.0.0.1:{closed_port()}"}
        )
    )
    up = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir), "JAMEY_MQTT_URL": MQTT_URL}))
    try:
        assert value(build_registry(off), "mqtt_connected") is None  # events off: nothing to alert on
        assert value(build_registry(off), "mqtt_connection_failures_total") == 0
        down_registry, up_registry = build_registry(down), build_registry(up)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
            (value(down_registry, "mqtt_connection_failures_total") or 0) >= 1
            and value(up_registry, "mqtt_connected") == 1
        ):
            time.sleep(0.05)
        assert value(down_registry, "mqtt_connected") == 0
        assert (value(down_registry, "mqtt_connection_failures_total") or 0) >= 1
        assert value(up_registry, "mqtt_connected") == 1
    finally:
        for engine in (off, down, up):
            engine.close()


def test_a_failing_source_does_not_fail_the_scrape(tmp_path: Path) -> None:
    # A database that cannot be opened (its directory is a file): memory and disk still scrape.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    broken = Engine(
        Settings.from_env(
            {"JAMEY_DATA_DIR": str(data_dir), "JAMEY_DATABASE_URL": f"sqlite:///{blocker}/jamey.db"}
        )
    )
    try:
        registry = build_registry(broken)
        text = generate_latest(registry).decode()
        assert "memory_documents" in text
        assert "jamey_data_dir_free_bytes" in text
        assert "backup_operations_total" not in text
    finally:
        broken.close()
