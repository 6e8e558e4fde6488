"""Dashboard time ranges, the health probe and the alert-to-dashboard links (no Streamlit)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import POSTGRES_URL, closed_port, listening_socket, wait_for_port

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.errors import InvalidInput
from jamey_engine.observability.dashboards import chart_for_alert
from workbench_ui.health import check_health
from workbench_ui.timerange import CUSTOM, resolve_range

NOW = datetime(2026, 3, 1, 12, 0, 7, tzinfo=UTC)


def test_a_preset_range_ends_now_rounded_down_so_renders_share_cached_queries() -> None:
    window = resolve_range("6h", now=NOW)
    assert window.end == datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert window.end - window.start == timedelta(hours=6)
    assert window.query_params() == {"range": "6h"}


def test_no_preset_means_the_last_hour() -> None:
    window = resolve_range(None, now=NOW)
    assert window.preset == "1h"
    assert window.end - window.start == timedelta(hours=1)


def test_a_custom_range_round_trips_through_the_url() -> None:
    window = resolve_range(CUSTOM, "2026-02-01T00:00:00Z", "2026-02-02T06:00:00Z", now=NOW)
    assert window.end - window.start == timedelta(hours=30)
    params = window.query_params()
    assert params == {"range": "custom", "start": "2026-02-01T00:00:00Z", "end": "2026-02-02T06:00:00Z"}
    assert resolve_range(params["range"], params["start"], params["end"]) == window


def test_a_duration_works_as_a_range() -> None:
    assert resolve_range("3h", now=NOW).end - resolve_range("3h", now=NOW).start == timedelta(hours=3)


@pytest.mark.parametrize(
    ("preset", "start", "end", "message"),
    [
        ("custom", "", "2026-02-01T00:00:00Z", "needs both a start and an end"),
        ("custom", "yesterday", "2026-02-01T00:00:00Z", "start 'yesterday' is not an ISO 8601"),
        ("custom", "2026-02-02T00:00:00Z", "2026-02-01T00:00:00Z", "must be after start"),
        ("custom", "2025-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "longer than the longest allowed"),
        ("fortnight", None, None, "range 'fortnight' is not one of 15m, 1h, 6h, 24h, 7d or custom"),
        ("365d", None, None, "longer than the longest allowed"),
    ],
)
def test_a_bad_range_names_the_field_and_value(
    preset: str, start: str | None, end: str | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        resolve_range(preset, start, end, now=NOW)


@contextmanager
def running_service(data_dir: Path, **env: str) -> Iterator[str]:
    """The real Jamey service (uvicorn in a thread) on ``data_dir``; yields its URL."""
    import uvicorn

    from jamey_engine.service.app import create_app

    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir), **env}))
    sock = listening_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.close()


def test_health_is_ok_when_the_service_answers_200_ok(data_dir: Path) -> None:
    with running_service(data_dir) as url:
        health = check_health(url + "/", timeout=10)
    assert health.ok, health
    assert health.url == url + "/health"
    assert health.detail == "HTTP 200, status ok"
    assert health.body is not None
    assert health.body["status"] == "ok"
    assert health.body["data_dir"] == {"ok": True, "detail": "writable"}
    assert health.body["database"] == {"ok": True, "detail": "ok"}


@pytest.mark.postgres
def test_health_is_not_ok_when_the_service_reports_trouble(data_dir: Path, postgres_url: str) -> None:
    with running_service(data_dir, JAMEY_DATABASE_URL=postgres_url) as url:
        assert check_health(url, timeout=10).ok
        name = sa.make_url(postgres_url).database
        admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:  # the service's database goes away under it
                conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()
        health = check_health(url, timeout=10)
    assert not health.ok
    assert health.status_code == 503
    assert health.detail == "HTTP 503, status unavailable (database unusable (OperationalError))"


def test_health_of_a_closed_port_says_how_to_start_the_service() -> None:
    health = check_health(f"http://127.0.0.1:{closed_port()}", timeout=1.0)
    assert not health.ok
    assert health.status_code is None
    assert "cannot reach" in health.detail and "jamey serve" in health.detail


@pytest.mark.parametrize(
    ("alertname", "annotations", "chart"),
    [
        ("JameyHighErrorRate", {}, "error_rate"),
        ("JameyHighLatency", {}, "latency_quantiles"),
        ("JameyMemoryIndexTooLarge", {}, "index_size"),
        ("JameyBackupTooOld", {}, "backup_counts"),
        ("JameyRateLimitSurge", {}, "rate_limited"),
        ("SomethingElse", {"dashboard": "backup_size"}, "backup_size"),
        ("OtherTeamRestoreSlow", {}, "backup_counts"),
        ("JameyMqttDisconnected", {}, None),
    ],
)
def test_alerts_link_to_the_dashboard_that_shows_them(
    alertname: str, annotations: dict, chart: str | None
) -> None:
    assert chart_for_alert(alertname, annotations) == chart


def test_every_alert_s_guide_is_written_once_in_the_guides_table() -> None:
    from jamey_engine.runbooks.alert_guides import GUIDES
    from jamey_engine.runbooks.links import ALERT_LINKS

    missing = {name: link.guide for name, link in ALERT_LINKS.items() if link.guide not in GUIDES}
    assert not missing, f"alerts whose guide is not in alert_guides.GUIDES: {missing}"
    unused = set(GUIDES) - {link.guide for link in ALERT_LINKS.values()}
    assert not unused, f"guides no alert uses: {unused}"


def test_an_index_size_alert_opens_the_prune_runbook_for_its_layer() -> None:
    from jamey_engine.runbooks.links import RunbookLink, runbook_for_alert, runbook_page_url

    link = runbook_for_alert("JameyMemoryIndexTooLarge", {"layer": "episodic", "severity": "warning"})
    assert link == RunbookLink("prune_memories", {"layer": "episodic"})
    assert runbook_page_url("http://127.0.0.1:8501/", link) == (
        "http://127.0.0.1:8501/runbooks?runbook=prune_memories&layer=episodic"
    )
    assert runbook_for_alert("JameyHighLatency", {}) is None
