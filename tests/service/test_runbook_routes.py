"""The runbook routes end to end: the real prune notebook started over HTTP, run by a real kernel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
from helpers import wait_until
from notebook_factory import make_test_notebooks
from seed_data import NEW_PER_LAYER, OLD_PER_LAYER, seed_memories
from service_support import TestClient, make_persona

from jamey_engine.engine import Engine

DEADLINE = 180.0


def _finished(client: TestClient, run_id: str, headers: dict[str, str]) -> dict[str, Any]:

    def finished() -> dict[str, Any] | None:
        answer = client.get(f"/admin/runbooks/runs/{run_id}", headers=headers)
        assert answer.status_code == 200, answer.text
        run: dict[str, Any] = answer.json()
        return run if run["status"] not in ("queued", "running") else None

    done: dict[str, Any] = wait_until(finished, DEADLINE, f"run {run_id} to finish", every=0.2)
    return done


def _documents(engine: Engine, layer: str) -> int:
    return engine.memory.sizes().layers[layer].documents


def test_prune_through_the_api_dry_run_then_apply_with_the_phrase(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    client, engine = make_client()
    seed_memories(engine)
    admin = make_persona(engine, "alice-ops", ("ops:write",))
    viewer = make_persona(engine, "victor-viewer", ("ops:read",))
    outsider = make_persona(engine, "mona-memory", ("memory:read",))

    listed = client.get("/admin/runbooks", headers=viewer.headers)
    assert listed.status_code == 200
    assert "prune_memories" in {item["name"] for item in listed.json()["runbooks"]}
    assert client.get("/admin/runbooks", headers=outsider.headers).status_code == 403
    refused = client.post("/admin/runbooks/prune_memories/runs", json={}, headers=viewer.headers)
    assert refused.status_code == 403 and "ops:write" in refused.json()["error"]

    bad = client.post(
        "/admin/runbooks/prune_memories/runs",
        json={"parameters": {"dry_run": "maybe"}},
        headers=admin.headers,
    )
    assert bad.json() == {"error": "parameter dry_run 'maybe' must be true or false", "status": 400}
    unknown = client.post("/admin/runbooks/nope/runs", json={}, headers=admin.headers)
    assert unknown.status_code == 404 and unknown.json()["error"].startswith("runbook 'nope' does not exist")

    restore = client.post(
        "/admin/runbooks/restore_backup/runs",
        json={"parameters": {"dry_run": False, "confirm": "restore x"}},
        headers=admin.headers,
    )
    assert restore.status_code == 403 and "lacks the scope 'admin'" in restore.json()["error"]

    started = client.post(
        "/admin/runbooks/prune_memories/runs",
        json={"parameters": {"layer": "working"}},
        headers=admin.headers,
    )
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "queued"
    dry = _finished(client, started.json()["id"], viewer.headers)
    assert dry["status"] == "succeeded" and dry["actor"] == "alice-ops"
    phrase = dry["summary"]["confirm_phrase"]
    assert phrase.startswith(f"prune {OLD_PER_LAYER} memories")
    assert _documents(engine, "working") == OLD_PER_LAYER + NEW_PER_LAYER

    applied = client.post(
        "/admin/runbooks/prune_memories/runs",
        json={"parameters": {"layer": "working", "dry_run": False, "confirm": phrase, "backup_first": False}},
        headers=admin.headers,
    )
    assert applied.status_code == 202, applied.text
    done = _finished(client, applied.json()["id"], viewer.headers)
    assert done["status"] == "succeeded" and done["summary"]["deleted"] == OLD_PER_LAYER
    assert _documents(engine, "working") == NEW_PER_LAYER

    notebook = client.get(f"/admin/runbooks/runs/{done['id']}/notebook", headers=viewer.headers)
    assert notebook.status_code == 200 and notebook.json()["cells"]
    html = client.get(f"/admin/runbooks/runs/{done['id']}/html", headers=viewer.headers)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "Pruned" in html.text

    history = client.get("/admin/runbooks/runs?runbook=prune_memories", headers=viewer.headers).json()["runs"]
    assert [run["id"] for run in history] == [done["id"], dry["id"]]
    again = client.post(f"/admin/runbooks/runs/{done['id']}/cancel", headers=admin.headers)
    assert again.status_code == 409 and "already finished" in again.json()["error"]
    missing = client.get("/admin/runbooks/runs/20260101T000000Z-000000", headers=viewer.headers)
    assert missing.status_code == 404

    metrics = client.get("/metrics").text
    assert 'runbook_runs_total{runbook="prune_memories",status="succeeded"} 2.0' in metrics
    assert 'runbook_run_duration_seconds{runbook="prune_memories"}' in metrics


def test_an_ops_write_key_cannot_cancel_an_admins_restore_run(make_client: Callable[..., Any]) -> None:
    from jamey_engine.runbooks import runs

    client, engine = make_client()
    operator = make_persona(engine, "olga-ops", ("ops:write",))
    admin = make_persona(engine, "ada-admin", ("admin",))
    # A restore that applies, queued by an admin (recorded only: no runner needed to be refused).
    restore = runs.create_run(
        engine.db,
        runbook="restore_backup",
        parameters={"backup_id": "", "dry_run": False, "confirm": "restore x"},
        actor="ada-admin",
        changes_data=True,
    )
    refused = client.post(f"/admin/runbooks/runs/{restore.id}/cancel", headers=operator.headers)
    assert refused.status_code == 403, refused.text
    assert "lacks the scope 'admin'" in refused.json()["error"]
    assert runs.get_run(engine.db, restore.id).status == "queued"
    cancelled = client.post(f"/admin/runbooks/runs/{restore.id}/cancel", headers=admin.headers)
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["id"] == restore.id


def test_past_the_run_queue_bound_a_start_is_429_with_retry_after_and_nothing_recorded(
    make_client: Callable[..., tuple[TestClient, Engine]], tmp_path: Any
) -> None:
    from notebook_factory import make_test_notebooks

    from jamey_engine.runbooks import launch, runs

    notebooks = make_test_notebooks(tmp_path / "notebooks")
    client, engine = make_client(
        JAMEY_NOTEBOOKS_DIR=str(notebooks), JAMEY_RUNS_MAX_ACTIVE="1", JAMEY_RUNS_MAX_QUEUED="1"
    )
    alice = make_persona(engine, "alice-ops", ("ops:write",))
    first = client.post(
        "/admin/runbooks/slow/runs", json={"parameters": {"seconds": 300}}, headers=alice.headers
    )
    assert first.status_code == 202, first.text
    second = client.post("/admin/runbooks/ok/runs", json={}, headers=alice.headers)
    assert second.status_code == 202 and second.json()["status"] == "queued"
    refused = client.post("/admin/runbooks/ok/runs", json={}, headers=alice.headers)
    try:
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) == runs.QUEUE_FULL_RETRY_AFTER
        assert "JAMEY_RUNS_MAX_QUEUED=1" in refused.json()["error"]
        assert len(runs.list_runs(engine.db)) == 2
    finally:
        for run_id in (second.json()["id"], first.json()["id"]):
            launch.cancel_run(engine, run_id)
        launch.wait_for_run(engine, first.json()["id"], timeout=DEADLINE)


def test_cancelling_a_running_run_over_http_stops_its_kernel_in_a_real_server(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    """`jamey serve` runs the run in its own runner process; a cancel over HTTP ends it
    ``cancelled`` mid-cell, its kernel gone, and only a key that may run it may stop it."""
    from jamey_engine.config import Settings
    from jamey_engine.runbooks import runs

    notebooks = make_test_notebooks(tmp_path / "notebooks")
    server = serve(JAMEY_NOTEBOOKS_DIR=str(notebooks))
    engine = Engine(Settings.from_env(server.env))
    try:
        operator = make_persona(engine, "olga-ops", ("ops:write",))
        viewer = make_persona(engine, "victor-viewer", ("ops:read",))
        # The first request reads the catalog (papermill inspects each notebook): slow under load.
        with httpx.Client(base_url=server.url, timeout=120) as http:
            started = http.post(
                "/admin/runbooks/slow/runs", json={"parameters": {"seconds": 300}}, headers=operator.headers
            )
            assert started.status_code == 202, started.text
            run_id = started.json()["id"]

            def sleeping() -> dict[str, Any] | None:
                run = http.get(f"/admin/runbooks/runs/{run_id}", headers=viewer.headers).json()
                assert run["status"] in ("queued", "running"), run
                return run if run["status"] == "running" and (run["cell"]["index"] or 0) >= 3 else None

            wait_until(sleeping, DEADLINE, "the run's sleeping cell", every=0.2)
            runner = runs.get_run(engine.db, run_id).pid
            assert runner is not None
            kernels = psutil.Process(runner).children(recursive=True)
            assert kernels, "the run has its kernel"

            refused = http.post(f"/admin/runbooks/runs/{run_id}/cancel", headers=viewer.headers)
            assert refused.status_code == 403 and "ops:write" in refused.json()["error"]
            assert runs.get_run(engine.db, run_id).status == "running"

            cancelled = http.post(f"/admin/runbooks/runs/{run_id}/cancel", headers=operator.headers)
            assert cancelled.status_code == 202, cancelled.text
            assert cancelled.json() == {"id": run_id, "status": "running"}  # stopping: follow with GET

            def finished() -> dict[str, Any] | None:
                run = http.get(f"/admin/runbooks/runs/{run_id}", headers=viewer.headers).json()
                return None if run["status"] in ("queued", "running") else run

            done = wait_until(finished, DEADLINE, "the cancelled run to finish", every=0.2)
            assert done["status"] == "cancelled", done
            assert done["error"] == "cancelled: the kernel was stopped" and done["finished_at"]
            assert done["cell"]["index"] == 3 and done["summary"] is None  # stopped mid-cell
            _gone, alive = psutil.wait_procs(kernels, timeout=30)
            assert not alive, "the kernel was stopped"
            again = http.post(f"/admin/runbooks/runs/{run_id}/cancel", headers=operator.headers)
            assert again.status_code == 409 and "already finished (cancelled)" in again.json()["error"]
            metrics = http.get("/metrics").text
            assert 'runbook_runs_total{runbook="slow",status="cancelled"} 1.0' in metrics
    finally:
        engine.close()
