"""The service when what it stands on fails for real: a writer lock held by another process,
and the rate-limit Redis going down under a running app."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from memory.workers import hold_writer
from private_servers import PrivateRedis
from service_support import TestClient, make_persona, sample

from jamey_engine.engine import Engine
from jamey_engine.keys.ratelimit import DEFAULT_LEASE


def test_without_the_log_a_writer_lock_held_by_another_process_is_a_503_with_retry_after(
    make_client: Callable[..., tuple[TestClient, Engine]], tmp_path: Path
) -> None:
    # With the write-ahead log (the default) a store never waits for the index writer; off, each
    # store commits to the index itself, so another process's writer reaches the client.
    client, engine = make_client(JAMEY_LOCK_TIMEOUT="0.5", JAMEY_WAL="off")
    writer = make_persona(engine, "blocked-writer", ("memory:write",))
    engine.memory.sizes()  # the layers exist, so the other process can open one
    ready, release = tmp_path / "ready", tmp_path / "release"
    holder = multiprocessing.get_context("spawn").Process(
        target=hold_writer, args=(str(engine.memory.layer_path("working")), str(ready), str(release))
    )
    holder.start()
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert time.monotonic() < deadline, "the other process never took the writer lock"
            time.sleep(0.01)
        refused = client.post(
            "/memories", json={"layer": "working", "content": "blocked"}, headers=writer.headers
        )
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "1"
        assert refused.json() == {
            "error": "layer 'working' is being written by another process; try again",
            "status": 503,
        }
    finally:
        release.touch()
        holder.join(timeout=30)
    stored = client.post("/memories", json={"layer": "working", "content": "after"}, headers=writer.headers)
    assert stored.status_code == 201, stored.text


@pytest.mark.redis
@pytest.mark.parametrize("failure", ["closed", "open"])
def test_redis_going_down_under_the_service_fails_as_configured(
    make_client: Callable[..., tuple[TestClient, Engine]], tmp_path: Path, failure: str
) -> None:
    with PrivateRedis(tmp_path / "redis") as redis:
        client, engine = make_client(JAMEY_RATE_LIMIT_STORAGE=redis.url, JAMEY_RATE_LIMIT_FAILURE=failure)
        reader = make_persona(engine, "while-redis-dies", ("memory:read",))
        assert client.get("/whoami", headers=reader.headers).status_code == 200
        assert sample(client, "rate_limit_storage_failures_total") == 0
        redis.stop()
        # The hits this process has leased are spent first (they are reserved in Redis); the
        # first request past them meets the dead Redis.
        for _ in range(DEFAULT_LEASE + 2):
            answer = client.get("/whoami", headers=reader.headers)
            if sample(client, "rate_limit_storage_failures_total"):
                break
    if failure == "closed":
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "1"
        assert answer.json()["status"] == 503
    else:
        assert answer.status_code == 200, answer.text
        assert answer.json()["name"] == "while-redis-dies"
    assert sample(client, "rate_limit_storage_failures_total") == 1
    assert "rate_limit_storage_failures_total 1.0" in client.get("/metrics").text
