"""One key's admin calls cannot starve the service's worker threads: a retention apply that
finds a run in progress answers 409 at once instead of waiting for the lock in a thread; forty
of them at once, from one key, leave a new key's first request (verified in a thread) answered;
and the unauthenticated /metrics writes nothing to the database and reads the memory layers at
most once per JAMEY_METRICS_CACHE_SECONDS."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import sqlalchemy as sa
from service.service_support import RunningServer, TestClient, age_key, make_persona

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.memory import MemoryStore
from jamey_engine.models import ApiKey
from jamey_engine.retention.runs import run_lock
from jamey_engine.runbooks import runs


def _key(server: RunningServer, name: str, scope: str) -> dict[str, str]:
    made = server.jamey(
        "keys", "create", "--name", name, "--scope", scope, "--rate-limit", "100000/minute", "--json"
    )
    assert made.returncode == 0, made.stderr
    return {"Authorization": f"Bearer {json.loads(made.stdout)['key']}"}


def test_an_apply_during_a_run_is_409_at_once(make_client: Callable[..., tuple[TestClient, Engine]]) -> None:
    client, engine = make_client(JAMEY_LOCK_TIMEOUT="600")
    operator = make_persona(engine, "olga-ops", ("ops:write",))
    with run_lock(engine):  # a run in progress (here: this test holds its lock)
        answer = client.post("/admin/retention/apply", headers=operator.headers)
    assert answer.status_code == 409, answer.text
    assert answer.json() == {"error": "a retention run is in progress; try again when it ends", "status": 409}
    assert client.post("/admin/retention/apply", headers=operator.headers).status_code == 200


def test_forty_applies_from_one_key_leave_a_new_key_answered(serve: Callable[..., RunningServer]) -> None:
    server = serve(JAMEY_LOCK_TIMEOUT="120")
    operator = _key(server, "olga-ops", "ops:write")
    engine = Engine(service_settings_of(server))
    try:
        with (
            run_lock(engine),
            httpx.Client(base_url=server.url, timeout=150) as client,
            ThreadPoolExecutor(max_workers=45) as pool,
        ):
            applies = [
                pool.submit(client.post, "/admin/retention/apply", headers=operator) for _ in range(45)
            ]
            reader = _key(server, "rita-reader", "memory:read")  # verified in a worker thread
            # Old code: every worker thread waits out the 120 s lock timeout, and so does this.
            first = httpx.get(f"{server.url}/whoami", headers=reader, timeout=20)
            assert first.status_code == 200, first.text
            answers = [future.result() for future in applies]
            statuses = [answer.status_code for answer in answers]
        assert set(statuses) == {409}, [answer.text for answer in answers if answer.status_code != 409]
    finally:
        engine.close()


def service_settings_of(server: RunningServer) -> Settings:
    return Settings.from_env(server.env)


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def test_metrics_writes_nothing_and_reads_the_layers_once_per_cache(
    make_client: Callable[..., tuple[TestClient, Engine]],
) -> None:
    client, engine = make_client(JAMEY_METRICS_CACHE_SECONDS="3600")
    expired = make_persona(engine, "old-key", ("memory:read",))
    age_key(engine, expired.id)
    run = runs.create_run(engine.db, runbook="ok", parameters={}, actor="cli", changes_data=False)
    runs.update_run(engine.db, run.id, status="running", pid=_dead_pid())
    first = client.get("/metrics")
    assert first.status_code == 200
    with engine.db.session() as session:
        row = session.get(ApiKey, expired.id)
        assert row is not None and row.expiry_recorded_at is None, "a scrape recorded an expiry"
    with engine.db.engine.connect() as conn:  # read without reaping (every reader reaps first)
        status = conn.execute(
            sa.text("SELECT status FROM runbook_runs WHERE id = :id"), {"id": run.id}
        ).scalar()
        assert status == "running", "a scrape reaped a run"
        events = conn.execute(sa.text("SELECT count(*) FROM key_events WHERE event = 'expired'")).scalar()
    assert events == 0
    other = MemoryStore(engine.settings.memory_dir, flush_interval=3600)  # another process's writes
    try:
        other.store_batch("episodic", ["one", "two"])
        again = client.get("/metrics").text
    finally:
        other.close()
    line = 'memory_wal_records{layer="episodic"}'
    assert f"{line} 0.0" in first.text and f"{line} 0.0" in again, "read again within the cache time"
