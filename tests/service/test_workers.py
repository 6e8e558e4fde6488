"""`jamey serve --workers 2` on Redis: limits, metrics, schedules and revocations hold across workers.

One real two-worker service (Redis counters, SQLite in its data dir, a 2-second backup
schedule) serves the whole module, because starting the workers takes several seconds on a
loaded machine. Requests go over fresh connections, so the kernel spreads them over both workers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from helpers import REDIS_URL, sleep_until, wait_until
from service_support import RunningServer, start_server, stop_server
from test_serve import cli_key

from jamey_engine.config import Settings

pytestmark = pytest.mark.slow

BACKUP_EVERY = 2.0
SYNC_SECONDS = 2.5  # each worker copies its own counts into the shared metrics every 2 s


def _healthy(server: RunningServer) -> bool:
    try:
        return httpx.get(f"{server.url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until_healthy(server: RunningServer, timeout: float = 90) -> None:
    try:
        wait_until(lambda: _healthy(server), timeout, "the workers to answer /health", every=0.2)
    except AssertionError as failed:
        raise AssertionError(f"{failed}:\n{server.log()}") from None


def worker_pids(server: RunningServer) -> set[int]:
    """The supervisor's live child processes that serve (uvicorn spawns them through
    multiprocessing, beside its resource tracker; granian forks them), not the log's flusher
    (`jamey serve` starts it too, as ``python -m jamey_engine.memory.flusher``)."""
    parent = server.process.pid
    granian = server.env.get("JAMEY_SERVER") == "granian"
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if b"jamey_engine.memory.flusher" in cmdline:
            continue
        serving = granian or (b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline)
        if ppid == parent and serving:
            pids.add(int(entry.name))
    return pids


@pytest.fixture(scope="module", params=["uvicorn", "granian"])
def workers(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RunningServer]:
    base = tmp_path_factory.mktemp("workers")
    data_dir = base / "data"
    data_dir.mkdir()
    server = start_server(
        data_dir,
        base / "serve.log",
        JAMEY_WORKERS="2",
        JAMEY_RATE_LIMIT_STORAGE=REDIS_URL,
        JAMEY_BACKUP_INTERVAL=f"{int(BACKUP_EVERY)}s",
        JAMEY_BACKUP_KEEP="0",
        JAMEY_SERVER=request.param,
    )
    try:
        wait_until_healthy(server)
        yield server
    finally:
        stop_server(server)


def test_several_workers_with_in_memory_counters_refuse_to_start(tmp_path: Path) -> None:
    from jamey_engine.cli import cli

    result = CliRunner().invoke(
        cli,
        ["--data-dir", str(tmp_path), "serve", "--workers", "2"],
        env={"JAMEY_RATE_LIMIT_STORAGE": "memory://"},
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: 2 workers need shared rate-limit counters")
    assert "redis://" in lines[0] and "Traceback" not in result.output


def test_a_key_limit_is_exact_over_both_workers(workers: RunningServer) -> None:
    key = cli_key(workers, "five-a-minute", "memory:read", rate_limit="5/minute")

    def call(_: int) -> int:
        with httpx.Client(timeout=30) as client:  # a connection each: both workers serve
            return client.get(f"{workers.url}/whoami", headers={"X-API-Key": key["key"]}).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(call, range(100)))
    assert statuses.count(200) == 5, statuses
    assert statuses.count(429) == 95


def metric(text: str, name: str, labels: str = "") -> float:
    """A sample's value in a /metrics text (``labels`` as written there; "" for a series without)."""
    series = f"{name}{{{labels}}}" if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(series):
            return float(line.split()[-1])
    return 0.0


def test_metrics_totals_are_the_requests_sent_whichever_worker_answers(workers: RunningServer) -> None:
    key = cli_key(workers, "counted", "memory:read")
    labels = 'method="GET",route="/memories/sizes",status="200"'
    before = metric(httpx.get(f"{workers.url}/metrics", timeout=10).text, "http_requests_total", labels)
    sent = 40
    for _ in range(sent):
        with httpx.Client(timeout=10) as client:
            assert client.get(f"{workers.url}/memories/sizes", headers={"X-API-Key": key["key"]}).is_success
    for _ in range(6):  # fresh connections: several scrapes land on each worker
        text = httpx.get(f"{workers.url}/metrics", timeout=10).text
        assert metric(text, "http_requests_total", labels) == before + sent
        assert (
            metric(text, "http_request_duration_seconds_count", 'method="GET",route="/memories/sizes"')
            >= sent
        )
        assert "process_resident_memory_bytes" in text


def test_log_fdatasyncs_are_every_workers_group_commits(workers: RunningServer) -> None:
    """Each store sent alone is one group commit (one write, one fdatasync) in whichever worker
    answers it; /metrics sums both workers' (each copies its own count at least every 2 s)."""
    key = cli_key(workers, "logging", "memory:write")

    def total() -> float:
        return metric(httpx.get(f"{workers.url}/metrics", timeout=10).text, "memory_wal_fdatasyncs_total")

    time.sleep(SYNC_SECONDS)  # what earlier tests stored has been copied by now
    before = total()
    sent = 20
    for number in range(sent):
        with httpx.Client(timeout=10) as client:  # fresh connections: both workers take some
            answer = client.post(
                f"{workers.url}/memories",
                json={"layer": "working", "content": f"logged {number}"},
                headers={"X-API-Key": key["key"]},
            )
            assert answer.status_code == 201, answer.text
    wait_until(lambda: total() == before + sent, 15, f"{sent} more fdatasyncs on /metrics", every=0.5)
    time.sleep(SYNC_SECONDS)
    assert total() == before + sent  # and none counted twice


def lease_holders(server: RunningServer) -> list[int]:
    """The pids that logged taking the backup lease, in order."""
    return [
        int(pid) for pid in re.findall(r"scheduled backups run in this process \(pid (\d+)\)", server.log())
    ]


def assert_one_live_lease_holder(server: RunningServer, timeout: float = 60) -> None:
    """Exactly one live worker holds the backup lease: the last to log taking it, and every
    earlier holder is dead (test_a_dead_worker_is_replaced_and_the_log_says_so may have killed
    one, before or after this test; the lease is then taken again once it expires)."""
    deadline = time.monotonic() + timeout
    while True:
        holders, live = lease_holders(server), worker_pids(server)
        if holders and holders[-1] in live and not set(holders[:-1]) & live:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"lease holders {holders}, live workers {live}:\n{server.log()}")
        time.sleep(0.5)


def flock_holders(path: Path) -> set[int]:
    """The pids the kernel says hold a flock on ``path`` (/proc/locks, matched by inode)."""
    inode = path.stat().st_ino
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 08:01:131 0 EOF" (a waiter's line has "->" first)
        if len(fields) >= 6 and fields[1] == "FLOCK" and int(fields[5].rsplit(":", 1)[1]) == inode:
            holders.add(int(fields[4]))
    return holders


def test_one_scheduled_backup_per_interval_not_one_per_worker(workers: RunningServer) -> None:
    """Only the worker holding the backup lease runs the schedule: the kernel shows one live
    worker holding the lease's lock, the other never took it, and every backup in the catalog is
    one the schedule logged (no stopwatch on the gaps between backups)."""
    backups: list[dict[str, str]] = []

    def enough() -> bool:
        nonlocal backups
        listed = workers.jamey("backup", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        backups = json.loads(listed.stdout)
        return len(backups) >= 4

    wait_until(enough, 120, f"four scheduled backups:\n{workers.log()[-2000:]}", every=0.5)
    assert_one_live_lease_holder(workers)
    holder, live = lease_holders(workers)[-1], worker_pids(workers)
    assert flock_holders(workers.data_dir / "run" / "backup.lease") == {holder}, (
        "the lock is the holder's alone"
    )
    assert len(live - {holder}) == 1, live  # the other worker serves but never backs up
    listed = {b["id"] for b in backups}
    done = wait_until(
        lambda: (
            (found := re.findall(r"scheduled backup (\S+) done", workers.log()))
            and listed <= set(found)
            and found
        ),
        60,
        f"the schedule's log lines for {sorted(listed)}",
    )
    assert len(done) == len(set(done)), done


def test_a_revocation_reaches_both_workers_within_the_cache_bound(workers: RunningServer) -> None:
    bound = Settings.from_env(workers.env).key_cache_seconds
    key = cli_key(workers, "revoke-everywhere", "memory:read")
    headers = {"X-API-Key": key["key"]}

    def status() -> int:
        with httpx.Client(timeout=10) as client:
            return client.get(f"{workers.url}/whoami", headers=headers).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:  # cache the key in both workers
        assert set(pool.map(lambda _: status(), range(16))) == {200}
    revoked = workers.jamey("keys", "revoke", key["id"], "--yes")
    assert revoked.returncode == 0, revoked.stderr
    # Checked once the bound has passed (a loaded machine can only make the check later, which
    # the bound allows): no stopwatch on how long the sixteen requests take.
    sleep_until(time.monotonic() + bound)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: status(), range(16)))
    assert set(statuses) == {401}, statuses


def died(server: RunningServer, pid: int) -> bool:
    """Has the supervisor logged the death of worker ``pid``?"""
    if server.env.get("JAMEY_SERVER") == "granian":  # granian names workers by number, not pid
        return "Unexpected exit from worker" in server.log() and "Respawning worker" in server.log()
    return f"Child process [{pid}] died" in server.log()


def test_a_dead_worker_is_replaced_and_the_log_says_so(workers: RunningServer) -> None:
    pids = worker_pids(workers)
    assert len(pids) == 2, pids
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        current = worker_pids(workers)
        if died(workers, victim) and len(current) == 2 and victim not in current:
            break
        time.sleep(0.3)
    assert died(workers, victim), workers.log()
    assert len(worker_pids(workers)) == 2
    wait_until_healthy(workers)


@pytest.mark.parametrize("http_server", ["uvicorn", "granian"])
def test_sigterm_stops_every_worker(tmp_path: Path, http_server: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = start_server(
        data_dir,
        tmp_path / "serve.log",
        JAMEY_WORKERS="2",
        JAMEY_RATE_LIMIT_STORAGE=REDIS_URL,
        JAMEY_SERVER=http_server,
    )
    try:
        wait_until_healthy(server)
        children = worker_pids(server)
        assert len(children) == 2
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        for pid in children:  # joined by the supervisor before it exited
            assert not Path(f"/proc/{pid}").exists()
        done = "Application shutdown complete" if http_server == "uvicorn" else "Granian shutdown completed"
        assert done in server.log()
        assert not list((data_dir / "run").glob("metrics-*"))  # the shared metrics are cleaned up
    finally:
        if server.process.poll() is None:
            stop_server(server)
