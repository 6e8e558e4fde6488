"""/health and /metrics: usable checks, route-template labels, and operations run by other processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from service_support import ROOT, Persona, TestClient, make_persona, sample, service_settings, test_client

from jamey_engine import __version__
from jamey_engine.engine import Engine
from jamey_engine.service import create_app


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_health_reports_ok_with_version_and_checks(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ok",
        "version": __version__,
        "data_dir": {"ok": True, "detail": "writable"},
        "database": {"ok": True, "detail": "ok"},
    }


def test_health_is_503_when_the_database_is_unusable(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # A PostgreSQL database that does not exist: a real connection failure.
    engine = Engine(
        service_settings(
            data_dir, JAMEY_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:5432/jamey_no_such_database"
        )
    )
    try:
        with test_client(create_app(engine)) as client:
            response = client.get("/health")
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["database"]["ok"] is False
        assert body["data_dir"]["ok"] is True
        assert "jamey_no_such_database" not in response.text and "postgres@" not in response.text
    finally:
        engine.close()


def test_health_is_503_when_the_data_dir_is_unusable(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    engine = Engine(service_settings(data_dir))
    try:
        with test_client(create_app(engine)) as client:
            assert client.get("/health").status_code == 200
            # Replace the data dir by a plain file: nothing can be written there any more.
            for child in data_dir.iterdir():
                if child.is_file():
                    child.unlink()
            moved = tmp_path / "moved"
            data_dir.rename(moved)
            data_dir.write_text("not a directory")
            response = client.get("/health")
        assert response.status_code == 503, response.text
        assert response.json()["data_dir"]["ok"] is False
        assert str(tmp_path) not in response.text
    finally:
        engine.close()


def test_request_metrics_are_labelled_by_route_template(client: TestClient, reader_key: Persona) -> None:
    for memory_id in ("11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"):
        client.get(f"/memories/working/{memory_id}", headers=reader_key.headers)
    client.get("/definitely/not/a/route/12345")
    samples = scrape(client)
    template = (("method", "GET"), ("route", "/memories/{layer}/{memory_id}"), ("status", "404"))
    assert samples[("http_requests_total", template)] >= 2
    assert ("http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404"))) in samples
    routes = {dict(labels).get("route") for name, labels in samples if name == "http_requests_total"}
    assert not any("1111" in str(route) or "12345" in str(route) for route in routes)
    assert (
        samples[
            (
                "http_request_duration_seconds_count",
                (("method", "GET"), ("route", "/memories/{layer}/{memory_id}")),
            )
        ]
        >= 2
    )


def test_answers_given_before_routing_are_labelled_by_the_route_template(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    """A 413 on Content-Length (before routing) and a 405 count under their route's template, the
    series the route's other answers count under; only a path no route serves is "unmatched"."""
    client, _ = make_client(JAMEY_MAX_BODY_BYTES="1000")
    big = {"content": b"x" * 2000, "headers": {"Content-Type": "application/json"}}
    answers = [
        (client.post("/memories/search", **big), "POST", "/memories/search"),
        (client.delete("/memories/search"), "DELETE", "/memories/search"),
        (client.post("/memories", **big), "POST", "/memories"),  # the fast path's route
        (client.put("/memories/working/abc", **big), "PUT", "/memories/{layer}/{memory_id}"),
        (client.put("/admin/retention/working", **big), "PUT", "/admin/retention/{layer}"),
        (client.put("/admin/retention/working"), "PUT", "/admin/retention/{layer}"),  # routed: 401
        (client.put("/admin/retention/plan", **big), "PUT", "/admin/retention/plan"),
        (client.post("/no/such/route", **big), "POST", "unmatched"),
    ]
    for answer, method, route in answers:
        labels = {"method": method, "route": route, "status": str(answer.status_code)}
        assert sample(client, "http_requests_total", labels) >= 1, (labels, answer.text)
    assert [answer.status_code for answer, _, _ in answers] == [413, 405, 413, 413, 413, 401, 413, 413]


def test_metrics_expose_every_name_the_alerts_use(client: TestClient) -> None:
    text = client.get("/metrics").text
    for name in (
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "memory_index_size_bytes",
        "memory_documents",
        "memory_pruned_documents_total",
        "backup_operations_total",
        "restore_operations_total",
        "rate_limited_requests_total",
        "api_key_verifications_total",
        "mqtt_connection_failures_total",
        "jamey_data_dir_free_bytes",
        "jamey_data_dir_total_bytes",
        "process_cpu_seconds_total",
    ):
        assert f"\n{name}" in text or text.startswith(name), name


def jamey_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``jamey`` CLI in another process on the same data dir."""
    return subprocess.run(
        [sys.executable, "-m", "jamey_engine", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_prune_and_backup_run_by_the_cli_show_in_metrics(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    client, engine = make_client()
    writer = make_persona(engine, "writer", ("memory:write",))
    old = [{"content": f"old memory {n}", "timestamp": "2020-01-01T00:00:00Z"} for n in range(6)]
    response = client.post(
        "/memories/batch", json={"layer": "episodic", "items": old}, headers=writer.headers
    )
    assert response.status_code == 201, response.text
    client.post("/memories", json={"layer": "episodic", "content": "recent"}, headers=writer.headers)
    assert sample(client, "memory_documents", {"layer": "episodic"}) == 7
    assert sample(client, "backup_operations_total", {"status": "success"}) == 0

    data_dir = engine.settings.data_dir
    pruned = jamey_cli(data_dir, "memory", "prune", "--layer", "episodic", "--older-than", "365d", "--yes")
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    backup = jamey_cli(data_dir, "backup", "create")
    assert backup.returncode == 0, backup.stdout + backup.stderr

    samples = scrape(client)
    assert samples[("memory_pruned_documents_total", (("layer", "episodic"),))] == 6
    assert samples[("memory_documents", (("layer", "episodic"),))] == 1
    assert samples[("backup_operations_total", (("status", "success"),))] == 2  # the prune backs up first
    assert samples[("backup_size_bytes", ())] > 0
    assert ("backup_last_success_timestamp_seconds", ()) in samples


def test_runbook_runs_active_and_queued_under_the_caps_are_read_from_the_database_at_scrape_time(
    make_client: Callable[..., tuple[TestClient, Engine]], database_url: str
) -> None:
    from jamey_engine.durations import utcnow
    from jamey_engine.runbooks import runs

    caps = {"JAMEY_RUNS_MAX_ACTIVE": "1", "JAMEY_RUNS_MAX_PER_ACTOR": "1", "JAMEY_RUNS_MAX_QUEUED": "5"}
    client, engine = make_client(JAMEY_DATABASE_URL=database_url, **caps)
    other = Engine(engine.settings)  # another front door (the CLI, a notebook) on the same database
    try:
        samples = scrape(client)
        assert (samples[("runbook_runs_active", ())], samples[("runbook_runs_queued", ())]) == (0, 0)
        limits = runs.RunCaps.from_settings(other.settings)
        started = [
            runs.create_run(
                other.db,
                runbook="memory_growth",
                parameters={},
                actor="alice",
                changes_data=False,
                caps=limits,
            )
            for _ in range(3)
        ]
        assert [run.waiting for run in started] == [False, True, True]
        samples = scrape(client)
        assert (samples[("runbook_runs_active", ())], samples[("runbook_runs_queued", ())]) == (1, 2)
        runs.update_run(other.db, started[0].id, status="succeeded", finished_at=utcnow())
        assert runs.claim_waiting(other.db, limits) == [started[1].id]
        samples = scrape(client)
        assert (samples[("runbook_runs_active", ())], samples[("runbook_runs_queued", ())]) == (1, 1)
        assert samples[("runbook_runs_total", (("runbook", "memory_growth"), ("status", "queued")))] == 2
    finally:
        other.close()
