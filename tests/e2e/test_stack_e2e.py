"""End to end: a real `jamey serve`, a real Prometheus scraping it every second with the project's
rules, real traffic (successes, 4xx, 429s, 5xx from a layer whose index is unusable), backups run
by the CLI, and every dashboard series read back through jamey_engine.observability.promql with the values
that traffic implies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from helpers import free_port, wait_until, wait_until_listening
from promserver import REPO, launch_prometheus, prometheus_config

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.observability.promql import PromQuery

pytestmark = pytest.mark.slow

LAYERS = ("short_term", "long_term", "working", "episodic", "semantic")
BROKEN = "episodic"
WINDOW = 300.0  # PromQuery's rate window (5 minutes): rate * WINDOW ~ requests in the test


@dataclass
class Stack:
    url: str
    prometheus: str
    settings: Settings
    env: dict[str, str]
    writer: str
    limited: str
    log: Path

    def jamey(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jamey_engine", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            cwd=REPO,
        )

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        response.raise_for_status()
        return list(response.json()["data"]["result"])


def segment_files(layer_dir: Path) -> list[Path]:
    return [path for path in layer_dir.iterdir() if path.is_file() and not path.name.startswith(".") and path.name != "meta.json"]  # fmt: skip


def replace_contents(path: Path, data: bytes) -> None:
    """New bytes under the same name, via a new inode (never rewrite a file a process may map)."""
    temporary = path.with_name(path.name + ".e2e-tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Data with 20 memories a layer and two keys; the episodic index damaged; then the service
    and a Prometheus scraping it every second."""
    data_dir = tmp_path / "data"
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("JAMEY_") and key != "API_KEY"
    }
    env.update(
        JAMEY_DATA_DIR=str(data_dir),
        JAMEY_GLOBAL_RATE_LIMIT="1000000/minute",
        JAMEY_LOG_LEVEL="info",
        JAMEY_LOCK_TIMEOUT="5",
    )
    settings = Settings.from_env(env)
    engine = Engine(settings)
    try:
        writer = engine.keys.create(
            "e2e-writer", scopes=("memory:read", "memory:write"), rate_limit="100000/minute"
        )
        limited = engine.keys.create("e2e-limited", scopes=("memory:read",), rate_limit="3/minute")
        for layer in LAYERS:
            engine.memory.store_batch(layer, [{"content": f"{layer} memory number {i}"} for i in range(20)])
        broken_dir = engine.memory.layer_path(BROKEN)
    finally:
        engine.close()
    originals = {path: path.read_bytes() for path in segment_files(broken_dir)}
    assert originals
    for path in originals:
        replace_contents(path, b"not a tantivy segment" * 4)

    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        service = subprocess.Popen(
            [sys.executable, "-m", "jamey_engine", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
        )  # fmt: skip
    prometheus_process = None
    try:
        wait_until_listening(service, port, timeout=30)
        workdir = tmp_path / "prometheus"
        workdir.mkdir()
        url, prometheus_process = launch_prometheus(
            workdir, prometheus_config(port, interval="1s", instance=None), workdir / "tsdb"
        )
        result = Stack(f"http://127.0.0.1:{port}", url, settings, env, writer.key, limited.key, log)
        result.originals = originals  # type: ignore[attr-defined]
        yield result
    finally:
        if prometheus_process is not None:
            prometheus_process.terminate()
            prometheus_process.wait(timeout=20)
        service.terminate()
        try:
            service.wait(timeout=15)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()


def scraped_after(stack: Stack, moment: float, scrapes: int = 2) -> None:
    """Wait until Prometheus has scraped the service ``scrapes`` times after ``moment``."""

    def done() -> bool:
        # "== 1": a scrape that timed out on a loaded machine also records up (as 0), with the
        # counters of the last good scrape, which may predate the traffic.
        result = stack.query('timestamp(up{job="jamey"} == 1)')
        return bool(result) and float(result[0]["value"][1]) >= moment + scrapes

    wait_until(done, 30, f"{scrapes} scrapes after the traffic", every=0.25)
    time.sleep(1.5)  # and a rule evaluation on them


def send(
    client: httpx.Client, tally: Counter[int], method: str, path: str, key: str | None, **kwargs: Any
) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    status = client.request(method, path, headers=headers, **kwargs).status_code
    tally[status] += 1
    return status


def traffic(stack: Stack, rounds: int) -> Counter[int]:
    """Successes, 4xx (404, 422, 401), 429s and 500s (searches of the damaged layer)."""
    tally: Counter[int] = Counter()
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        for n in range(rounds):
            search = {"layer": "semantic", "q": "memory"}
            send(client, tally, "GET", "/memories/search", stack.writer, params=search)
            send(
                client,
                tally,
                "GET",
                "/memories/search",
                stack.writer,
                params={"layer": "long_term", "q": "number"},
            )
            send(
                client,
                tally,
                "POST",
                "/memories",
                stack.writer,
                json={"layer": "working", "content": f"note {n}"},
            )
            send(
                client,
                tally,
                "GET",
                "/memories/search",
                stack.writer,
                params={"layer": BROKEN, "q": "memory"},
            )
            send(
                client, tally, "GET", "/memories/semantic/9d7f6c1e-0000-4000-8000-000000000000", stack.writer
            )
            send(
                client, tally, "GET", "/memories/search", stack.writer, params={"layer": "nowhere", "q": "x"}
            )
            send(client, tally, "GET", "/memories/search", None, params=search)
            send(client, tally, "GET", "/memories/search", stack.limited, params=search)
            if n % 2 == 0:
                send(client, tally, "GET", "/memories/search", stack.writer, params=search)
    return tally


def near(measured: float, low: float, high: float, slack: float = 0.12) -> bool:
    """``measured`` within [low, high], widened by ``slack`` (Prometheus extrapolates rates to
    the window's edges) and by one request either way."""
    return low * (1 - slack) - 1 <= measured <= high * (1 + slack) + 1


def last(frame: pd.DataFrame, **labels: str) -> float:
    for column, value in labels.items():
        frame = frame[frame[column] == value]
    assert not frame.empty, labels
    return float(frame.sort_values("timestamp")["value"].iloc[-1])


def test_every_dashboard_series_shows_what_the_traffic_and_backups_did(stack: Stack) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    wait_until(lambda: bool(stack.query('up{job="jamey"} == 1')), 30, "the first scrape", every=0.25)

    # Warm-up: one of each kind, so every series exists before the measured traffic.
    warm = traffic(stack, 1)
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        for _ in range(5):  # the limited key's 3/minute runs out: a 429 series exists too
            if (
                send(
                    client,
                    warm,
                    "GET",
                    "/memories/search",
                    stack.limited,
                    params={"layer": "working", "q": "x"},
                )
                == 429
            ):
                break
    assert {200, 201, 401, 404, 422, 429, 500} <= set(warm), warm
    scraped_after(stack, time.time())

    main = traffic(stack, 24)
    assert main[500] == 24 and main[429] >= 20, main

    # A backup that fails (its directory cannot be created), then repair the layer and back up.
    blocker = stack.settings.data_dir.parent / "not-a-directory"
    blocker.write_text("a file where the backup directory should go")
    failed = subprocess.run(
        [sys.executable, "-m", "jamey_engine", "backup", "create"],
        env={**stack.env, "JAMEY_BACKUP_DIR": str(blocker / "backups")},
        capture_output=True, text=True, timeout=180, cwd=REPO,
    )  # fmt: skip
    assert failed.returncode != 0 and failed.stderr.startswith("error: "), failed.stdout + failed.stderr
    for path, data in stack.originals.items():  # type: ignore[attr-defined]
        replace_contents(path, data)
    created = stack.jamey("backup", "create", "--json")
    assert created.returncode == 0, created.stdout + created.stderr
    backup = json.loads(created.stdout)
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        repaired = client.get("/memories/search", params={"layer": BROKEN, "q": "memory"}, headers={"Authorization": f"Bearer {stack.writer}"})  # fmt: skip
    assert repaired.status_code == 200, repaired.text
    main[200] += 1
    total = warm + main
    counted = 'sum(http_requests_total{job="jamey",route!~"/metrics|/health"})'
    wait_until(
        lambda: float((stack.query(counted) or [{"value": [0, "0"]}])[0]["value"][1]) >= sum(total.values()),
        30,
        "every request sent counted in a scrape",
        every=0.25,
    )
    scraped_after(stack, time.time())  # and the recording rules evaluated on those samples
    end = datetime.now(UTC)

    prom = PromQuery(stack.prometheus, timeout=10)

    # Requests by status: rate over 5 minutes * 300 s ~ the requests sent.
    rates = prom.request_rate(started, end)
    api = rates[(rates["timestamp"] == rates["timestamp"].max()) & (rates["route"] != "/metrics")]
    by_status = api.groupby("status")["value"].sum()
    for status in (200, 201, 401, 404, 422, 429, 500):
        measured = by_status[str(status)] * WINDOW
        assert near(measured, main[status], total[status]), (status, measured, main[status], total[status])
    assert set(rates["route"]) >= {
        "/memories/search",
        "/memories",
        "/memories/{layer}/{memory_id}",
        "/metrics",
    }

    # The error rate: the 500s' share of API requests.
    api_main, api_total = sum(main.values()), sum(total.values())
    error_rate = last(prom.error_rate(started, end))
    assert near(error_rate, main[500] / api_total, total[500] / api_main, slack=0.1), (
        error_rate,
        main,
        total,
    )
    assert 0.05 < error_rate < 0.2

    # Rate-limit rejections by scope.
    limited = prom.rate_limited(started, end)
    assert near(last(limited, scope="key") * WINDOW, main[429], total[429])
    assert last(limited, scope="global") == 0

    # Latency quantiles: ordered, and inside the histogram's range.
    latency = prom.latency_quantiles(started, end)
    p50, p95, p99 = (last(latency, quantile=q) for q in ("0.5", "0.95", "0.99"))
    assert 0 < p50 <= p95 <= p99 <= 10

    # Index size and documents by layer: what the store itself reports (read again each time:
    # the service's writer may still merge segments).
    engine = Engine(stack.settings)

    def layer_values(name: str) -> dict[str, float]:
        frame = prom.range(name, started, datetime.now(UTC))
        return {layer: last(frame, layer=layer) for layer in LAYERS}

    def store_values(field: str) -> dict[str, float]:
        return {layer: float(getattr(size, field)) for layer, size in engine.memory.sizes().layers.items()}

    try:
        assert store_values("documents")["working"] == 20 + warm[201] + main[201]
        wait_until(
            lambda: layer_values("index_documents") == store_values("documents"),
            20,
            "documents to match",
            every=0.25,
        )
        wait_until(
            lambda: layer_values("index_size") == store_values("bytes"),
            20,
            "index sizes to match",
            every=0.25,
        )
        total_bytes = sum(store_values("bytes").values())
    finally:
        engine.close()

    # Backups: one failure and one success, the last one's duration and size, and its age.
    counts = prom.backup_counts(started, datetime.now(UTC))
    assert last(counts, status="success") == pytest.approx(1.0, abs=0.15)
    assert last(counts, status="failure") == pytest.approx(1.0, abs=0.15)
    assert last(prom.backup_size(started, datetime.now(UTC))) == backup["size_bytes"]
    duration = last(prom.backup_duration(started, datetime.now(UTC)))
    assert 0 < duration < 120
    age = prom.backup_age_seconds()
    assert age is not None and 0 <= age < (datetime.now(UTC) - started).total_seconds() + 5

    # The overview's numbers agree with the series.
    headline = prom.headline()
    assert headline["error_rate"] == pytest.approx(error_rate, rel=0.2)
    assert headline["p95_latency"] is not None and headline["p95_latency"] > 0
    assert headline["total_index_bytes"] == pytest.approx(total_bytes, rel=0.05)

    # The alert rules see the same: the error-rate warning is pending (it needs 5 minutes).
    def error_alert() -> bool:
        alerts = prom.alerts()
        return bool((alerts["alertname"] == "JameyHighErrorRate").any())

    wait_until(error_alert, 15, "JameyHighErrorRate to be pending", every=0.25)
    alerts = prom.alerts()
    pending = alerts[alerts["alertname"] == "JameyHighErrorRate"].iloc[0]
    assert pending["state"] == "pending" and pending["severity"] == "warning"
    assert "JameyBackupFailed" in set(alerts[alerts["state"] == "firing"]["alertname"])
    assert "JameyServiceDown" not in set(alerts["alertname"])

    # Every series links to a query Prometheus runs.
    for name in ("error_rate", "latency_quantiles", "request_rate", "rate_limited", "index_size"):
        link = httpx.URL(prom.query_link(name, started, end))
        assert stack.query(link.params["g0.expr"]), name
    prom.close()
