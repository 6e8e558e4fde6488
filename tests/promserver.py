"""A real Prometheus full of known Jamey data, for tests of everything that reads Prometheus.

``start_prometheus(workdir)`` (or the session fixture ``backfilled_prometheus``, imported into
a test module or conftest with ``from promserver import backfilled_prometheus``) does this:

1. ``Scenario`` defines every Jamey series as an exact function of time: request counters at
   constant rates (8% of API requests answer 5xx, one 429 a second), a latency histogram with
   known quantiles, growing index sizes, a daily backup at 03:00 UTC...
2. ``promtool tsdb create-blocks-from openmetrics`` backfills ``days`` of that history (one
   sample a minute) into a fresh TSDB.
3. A small HTTP exporter serves the same functions live, so the series go on up to "now".
4. Prometheus starts on that TSDB with the project's rules (prometheus/rules/*.yml), scraping
   the exporter every second as job "jamey", instance "jamey-fixture", and evaluating every
   second.

A test can therefore ask for any range inside the last ``days`` and compare with
``Scenario``'s numbers. A missing prometheus or promtool binary fails the test (it never skips).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import start_on_free_port

REPO = Path(__file__).resolve().parent.parent
RULES = sorted((REPO / "prometheus" / "rules").glob("*.yml"))
INSTANCE = "jamey-fixture"
LAYERS = ("short_term", "long_term", "working", "episodic", "semantic")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INSTALL_HINT = "install it with: apt-get install prometheus prometheus-alertmanager"

SEARCH = "/memories/{layer}/search"
STORE = "/memories/{layer}"
# Requests per second by (method, route, status). API traffic (all but /metrics) is 6/s, of
# which 0.48/s answer 500: an error ratio of exactly 8%.
REQUEST_RATES: dict[tuple[str, str, str], float] = {
    ("GET", SEARCH, "200"): 3.0,
    ("POST", STORE, "201"): 1.0,
    ("GET", SEARCH, "400"): 0.4,
    ("POST", STORE, "500"): 0.48,
    ("GET", SEARCH, "429"): 1.0,
    ("GET", "/health", "200"): 0.12,
    ("GET", "/metrics", "200"): 0.2,
}
# Cumulative share of requests at or under each bucket: p50 0.0375 s, p95 0.75 s, p99 2.5 s.
API_LATENCY = (0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.94, 0.96, 0.99, 1.0, 1.0)
# Scrapes are slow (all between 1 and 2.5 s): the API quantiles must not include them.
METRICS_LATENCY = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0)
MIB = 1024**2


def require_binary(*names: str) -> str:
    """The path of the first of ``names`` on PATH; fails the test (never skips) when none is."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"{' / '.join(names)} not found on PATH; {INSTALL_HINT}", pytrace=False)


@dataclass(frozen=True)
class Scenario:
    """Every synthetic Jamey series as an exact function of Unix time ``t`` (seconds)."""

    origin: float

    # --- expectations tests compare with ---------------------------------------------------
    error_ratio = 0.08
    p50 = 0.0375
    p95 = 0.75
    p99 = 2.5
    rate_limited_per_second = 1.0
    backup_duration_seconds = 12.5
    backup_size_bytes = 300 * MIB
    backup_hour_utc = 3

    def request_rate(self, status: str) -> float:
        """Requests per second answered with ``status`` (all routes)."""
        return sum(rate for (_m, _r, s), rate in REQUEST_RATES.items() if s == status)

    def index_size(self, layer: str, t: float) -> float:
        """Bytes of ``layer``'s index at ``t``: 100 MiB * (i+1) plus 10 MiB * (i+1) a day."""
        i = LAYERS.index(layer) + 1
        return 100 * MIB * i + 10 * MIB * i * (t - self.origin) / 86400

    def documents(self, layer: str, t: float) -> float:
        """Documents in ``layer`` at ``t``: 1000 * (i+1) plus 500 a day per (i+1)."""
        i = LAYERS.index(layer) + 1
        return float(1000 * i + math.floor(500 * i * (t - self.origin) / 86400))

    def backups_before(self, t: float) -> int:
        """Successful backups (daily at 03:00 UTC) in ``(origin, t]``."""
        hour = self.backup_hour_utc * 3600
        return max(0, math.floor((t - hour) / 86400) - math.floor((self.origin - hour) / 86400))

    def last_backup(self, t: float) -> float:
        """Unix time of the last 03:00 UTC at or before ``t``."""
        hour = self.backup_hour_utc * 3600
        return math.floor((t - hour) / 86400) * 86400 + hour

    def samples(self, t: float) -> Iterator[tuple[str, str, float]]:
        """(name, labels without braces, value) of every series at ``t``."""
        elapsed = t - self.origin
        by_route: dict[tuple[str, str], float] = {}
        for (method, route, status), rate in REQUEST_RATES.items():
            yield (
                "http_requests_total",
                f'method="{method}",route="{route}",status="{status}"',
                rate * elapsed,
            )
            by_route[(method, route)] = by_route.get((method, route), 0.0) + rate
        for (method, route), rate in by_route.items():
            shares = METRICS_LATENCY if route == "/metrics" else API_LATENCY
            count = rate * elapsed
            labels = f'method="{method}",route="{route}"'
            for bound, share in zip(LATENCY_BUCKETS, shares, strict=True):
                yield "http_request_duration_seconds_bucket", f'{labels},le="{bound}"', share * count
            yield "http_request_duration_seconds_bucket", f'{labels},le="+Inf"', count
            yield "http_request_duration_seconds_count", labels, count
            yield "http_request_duration_seconds_sum", labels, 0.2 * count
        for layer in LAYERS:
            yield "memory_index_size_bytes", f'layer="{layer}"', self.index_size(layer, t)
            yield "memory_documents", f'layer="{layer}"', self.documents(layer, t)
        yield "rate_limited_requests_total", 'scope="key"', self.rate_limited_per_second * elapsed
        yield "rate_limited_requests_total", 'scope="global"', 0.0
        yield "backup_operations_total", 'status="success"', float(self.backups_before(t))
        yield "backup_operations_total", 'status="failure"', 0.0
        yield "backup_duration_seconds", "", self.backup_duration_seconds
        yield "backup_size_bytes", "", float(self.backup_size_bytes)
        yield "backup_last_success_timestamp_seconds", "", self.last_backup(t)
        yield "mqtt_connected", "", 1.0
        yield "mqtt_connection_failures_total", "", 2.0
        yield "process_resident_memory_bytes", "", 150.0 * MIB
        yield "process_cpu_seconds_total", "", 0.05 * elapsed
        yield "jamey_data_dir_free_bytes", "", 40e9
        yield "jamey_data_dir_total_bytes", "", 100e9

    def exposition(self, t: float) -> str:
        """The Prometheus text exposition of every series at ``t`` (what the exporter serves)."""
        lines = [
            f"{name}{{{labels}}} {value!r}" if labels else f"{name} {value!r}"
            for name, labels, value in self.samples(t)
        ]
        return "\n".join(lines) + "\n"

    def write_openmetrics(self, path: Path, spans: list[tuple[float, float, float]]) -> None:
        """OpenMetrics text of every series for promtool: each span is (start, end, interval s)."""
        extra = f'job="jamey",instance="{INSTANCE}"'
        series: dict[tuple[str, str], list[str]] = {}
        for start, end, interval in spans:
            for k in range(int((end - start) // interval) + 1):
                t = start + k * interval
                for name, labels, value in self.samples(t):
                    key = (name, f"{labels},{extra}" if labels else extra)
                    series.setdefault(key, []).append(f"{value!r} {t:.0f}")
        with path.open("w") as out:
            for (name, labels), points in series.items():
                head = f"{name}{{{labels}}} "
                out.writelines(head + point + "\n" for point in points)
            out.write("# EOF\n")


class _Exporter(BaseHTTPRequestHandler):
    scenario: Scenario
    scrapes: list[float]

    def do_GET(self) -> None:
        self.scrapes.append(time.time())
        body = self.scenario.exposition(time.time()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A scrape Prometheus gave up on (a busy machine) is not worth a traceback."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@dataclass
class PromServer:
    """A running Prometheus with backfilled Jamey data; ``url``, ``scenario`` and the backfill's end."""

    url: str
    scenario: Scenario
    backfill_end: float
    workdir: Path
    process: subprocess.Popen[bytes]
    exporter: ThreadingHTTPServer
    _threads: list[threading.Thread] = field(default_factory=list)

    def query(self, expr: str) -> list[dict[str, object]]:
        """A raw instant query (for checks independent of jamey_engine.observability.promql)."""
        import json
        from urllib.parse import urlencode

        address = f"{self.url}/api/v1/query?{urlencode({'query': expr})}"
        with urllib.request.urlopen(address, timeout=10) as resp:  # noqa: S310 (http URL we built)
            return list(json.load(resp)["data"]["result"])

    def log(self) -> str:
        """Prometheus' log so far (for assertion messages)."""
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        """Stop Prometheus and the exporter."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.exporter.shutdown()
        self.exporter.server_close()


def prometheus_config(port: int, *, interval: str = "1s", instance: str | None = INSTANCE) -> str:
    """A Prometheus config scraping 127.0.0.1:``port`` as job "jamey" every ``interval``, with
    the project's rules; ``instance`` renames the target (None keeps host:port)."""
    rules = "\n".join(f"  - {path}" for path in RULES)
    relabel = (
        f"""    relabel_configs:
      - target_label: instance
        replacement: {instance}
"""
        if instance
        else ""
    )
    return f"""global:
  scrape_interval: {interval}
  evaluation_interval: {interval}
rule_files:
{rules}
scrape_configs:
  - job_name: jamey
    static_configs:
      - targets: ["127.0.0.1:{port}"]
{relabel}"""


def start_prometheus(workdir: Path, *, days: float = 7.0, interval: float = 60.0) -> PromServer:
    """Backfill ``days`` of Scenario data, start the exporter and Prometheus; return when ready."""
    require_binary("prometheus")
    promtool = require_binary("promtool")
    workdir.mkdir(parents=True, exist_ok=True)
    # The backfill ends now, a sample every ``interval`` s and, for the last 10 minutes, every
    # second like the live scrapes (so 5-minute rates at "now" see evenly spaced samples).
    # Prometheus refuses live samples older than the newest block: the exporter takes over.
    end = float(math.floor(time.time()))
    start = end - days * 86400
    dense = end - 600
    scenario = Scenario(origin=start)
    openmetrics = workdir / "backfill.om"
    scenario.write_openmetrics(openmetrics, [(start, dense - interval, interval), (dense, end, 1.0)])
    tsdb = workdir / "tsdb"
    done = subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=24h",
            str(openmetrics),
            str(tsdb),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"promtool backfill failed: {done.stderr[-2000:]}"
    openmetrics.unlink()

    scrapes: list[float] = []
    handler = type("Exporter", (_Exporter,), {"scenario": scenario, "scrapes": scrapes})
    exporter = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=exporter.serve_forever, name="jamey-exporter", daemon=True)
    thread.start()
    url, process = launch_prometheus(workdir, prometheus_config(exporter.server_address[1]), tsdb)
    server = PromServer(url, scenario, end, workdir, process, exporter, [thread])
    # Live from here: two scrapes, then rules evaluated on them (rates over the junction
    # between backfill and scrapes settle once live samples exist).
    deadline = time.monotonic() + 30
    while len(scrapes) < 2:
        if time.monotonic() >= deadline:
            server.stop()
            log = (workdir / "prometheus.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"Prometheus scraped the exporter {len(scrapes)} time(s) in 30 s:\n{log}")
        time.sleep(0.1)
    time.sleep(2.0)
    return server


def launch_prometheus(workdir: Path, config_text: str, tsdb: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """Start Prometheus with ``config_text`` on ``tsdb`` and a free loopback port; return its URL
    and process once it is ready (log in workdir/prometheus.log). Fails if the binary is missing."""
    prometheus = require_binary("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(config_text)

    def launch(port: int) -> subprocess.Popen[bytes]:
        with (workdir / "prometheus.log").open("wb") as log:
            return subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tsdb}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=30d",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    try:
        process, port = start_on_free_port(launch, timeout=60)
    except TimeoutError as exc:
        pytest.fail(
            f"prometheus did not start ({exc}):\n{(workdir / 'prometheus.log').read_text(errors='replace')[-3000:]}"
        )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, process, workdir / "prometheus.log")
    return url, process


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    """Block until Prometheus at ``url`` answers /-/ready; fail with its log if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"prometheus exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:  # noqa: S310 (http URL we built)
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail(
        f"prometheus at {url} not ready within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}"
    )


@pytest.fixture(scope="session")
def backfilled_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromServer]:
    """One Prometheus per test session with 7 days of Scenario data, live up to now."""
    server = start_prometheus(tmp_path_factory.mktemp("prometheus"))
    try:
        yield server
    finally:
        server.stop()
