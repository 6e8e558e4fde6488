"""The PromQL module against a real Prometheus holding 7 days of known data (tests/promserver.py)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import promserver
import pytest
from helpers import closed_port, free_port, wait_until_listening
from promserver import LAYERS, PromServer

from jamey_engine import thresholds
from jamey_engine.config import Settings
from jamey_engine.errors import InvalidInput, NotFound, Unavailable
from jamey_engine.observability import promql
from jamey_engine.observability.promql import BadQuery, NoData, PrometheusUnreachable, PromQuery, choose_step


@pytest.fixture
def prom(backfilled_prometheus: PromServer) -> Iterator[PromQuery]:
    query = PromQuery(backfilled_prometheus.url, timeout=10)
    yield query
    query.close()


def last_hour(server: PromServer) -> tuple[datetime, datetime]:
    end = datetime.fromtimestamp(server.backfill_end, UTC)
    return end - timedelta(hours=1), end


def seven_days(server: PromServer) -> tuple[datetime, datetime]:
    end = datetime.fromtimestamp(server.backfill_end, UTC)
    return end - timedelta(days=7) + timedelta(minutes=10), end


# --- the step policy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("span", "step"),
    [
        (timedelta(minutes=15), timedelta(seconds=1)),
        (timedelta(hours=1), timedelta(seconds=5)),
        (timedelta(hours=6), timedelta(seconds=30)),
        (timedelta(hours=24), timedelta(minutes=2)),
        (timedelta(days=7), timedelta(minutes=15)),
        (timedelta(days=365), timedelta(hours=12)),
    ],
)
def test_choose_step_picks_the_smallest_round_step_within_a_thousand_points(
    span: timedelta, step: timedelta
) -> None:
    end = datetime(2026, 1, 8, tzinfo=UTC)
    chosen = choose_step(end - span, end)
    assert chosen == step
    assert span / chosen + 1 <= promql.MAX_POINTS


def test_choose_step_keeps_even_decades_within_a_thousand_points() -> None:
    end = datetime(2026, 1, 1, tzinfo=UTC)
    span = timedelta(days=3650)
    assert span / choose_step(end - span, end) + 1 <= promql.MAX_POINTS


def test_choose_step_rejects_an_end_before_the_start() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidInput, match=r"end .* must be after start"):
        choose_step(now, now - timedelta(hours=1))


def test_a_seven_day_range_returns_at_most_a_thousand_points_per_series(
    prom: PromQuery, backfilled_prometheus: PromServer
) -> None:
    start, end = seven_days(backfilled_prometheus)
    frame = prom.request_rate(start, end)
    per_series = frame.groupby(["route", "status"]).size()
    assert len(per_series) == len(promserver.REQUEST_RATES)
    assert per_series.max() <= promql.MAX_POINTS
    assert per_series.min() > 500  # the whole week, not a sliver of it


# --- every dashboard series, with the values the data implies --------------------------------


def assert_tidy(frame: pd.DataFrame, labels: tuple[str, ...]) -> None:
    assert list(frame.columns) == ["timestamp", "value", *labels]
    assert isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype)
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["value"].dtype == "float64"
    assert frame["value"].notna().all()


def test_error_rate_is_the_share_of_api_requests_answered_5xx(
    prom: PromQuery, backfilled_prometheus: PromServer
) -> None:
    frame = prom.error_rate(*last_hour(backfilled_prometheus))
    assert_tidy(frame, ())
    assert frame["value"].to_numpy() == pytest.approx(promserver.Scenario.error_ratio, rel=1e-6)


def test_latency_quantiles_leave_out_slow_scrapes_of_metrics(
    prom: PromQuery, backfilled_prometheus: PromServer
) -> None:
    frame = prom.latency_quantiles(*last_hour(backfilled_prometheus))
    assert_tidy(frame, ("quantile",))
    by_quantile = frame.groupby("quantile")["value"]
    assert by_quantile.min().to_dict() == pytest.approx({"0.5": 0.0375, "0.95": 0.75, "0.99": 2.5}, rel=1e-6)
    assert by_quantile.max().to_dict() == pytest.approx({"0.5": 0.0375, "0.95": 0.75, "0.99": 2.5}, rel=1e-6)


def test_request_rate_is_per_route_and_status(prom: PromQuery, backfilled_prometheus: PromServer) -> None:
    frame = prom.request_rate(*last_hour(backfilled_prometheus))
    assert_tidy(frame, ("route", "status"))
    rates = frame.groupby(["route", "status"])["value"].median().to_dict()
    expected = {(route, status): rate for (_method, route, status), rate in promserver.REQUEST_RATES.items()}
    assert rates == pytest.approx(expected, rel=1e-6)


def test_rate_limited_is_per_scope(prom: PromQuery, backfilled_prometheus: PromServer) -> None:
    frame = prom.rate_limited(*last_hour(backfilled_prometheus))
    assert_tidy(frame, ("scope",))
    rates = frame.groupby("scope")["value"].median().to_dict()
    assert rates == pytest.approx({"key": 1.0, "global": 0.0})


def test_index_size_and_documents_follow_each_layer(
    prom: PromQuery, backfilled_prometheus: PromServer
) -> None:
    scenario = backfilled_prometheus.scenario
    start, end = seven_days(backfilled_prometheus)
    sizes = prom.index_size(start, end)
    docs = prom.index_documents(start, end)
    assert_tidy(sizes, ("layer",))
    assert_tidy(docs, ("layer",))
    assert set(sizes["layer"]) == set(LAYERS) == set(docs["layer"])
    for row in sizes.sample(50, random_state=1).itertuples():
        expected = scenario.index_size(str(row.layer), row.timestamp.timestamp())
        assert row.value == pytest.approx(expected, rel=1e-3), row
    for row in docs.sample(50, random_state=2).itertuples():
        expected = scenario.documents(str(row.layer), row.timestamp.timestamp())
        assert row.value == pytest.approx(expected, abs=2 + 1e-3 * expected), row
    # the largest layer grew by a week of 10 MiB * 5 a day
    semantic = sizes[sizes["layer"] == "semantic"]["value"]
    assert semantic.iloc[-1] - semantic.iloc[0] == pytest.approx(7 * 50 * promserver.MIB, rel=0.01)


def test_backup_counts_show_each_daily_backup(prom: PromQuery, backfilled_prometheus: PromServer) -> None:
    start, end = seven_days(backfilled_prometheus)
    frame = prom.backup_counts(start, end)
    assert_tidy(frame, ("status",))
    success = frame[frame["status"] == "success"].set_index("timestamp")["value"]
    failure = frame[frame["status"] == "failure"]["value"]
    assert failure.max() == 0
    assert success.min() == 0
    assert success.max() == pytest.approx(1.0, abs=0.05)
    # the counts are up in the hour after each 03:00 UTC inside the window, and only then (a
    # window that opens between 03:00 and 04:00 begins after that day's backup: not counted)
    backup_time = success.index.floor("D") + pd.Timedelta(hours=3)
    after_backup = success[(success.index.hour == 3) & (success.index.minute > 0) & (backup_time > start)]
    assert len(after_backup) >= 6
    assert after_backup.to_numpy() == pytest.approx(1.0, abs=0.05)
    assert success[success.index.hour.isin([6, 12, 18])].max() == 0


def test_backup_duration_and_size_are_the_last_backups(
    prom: PromQuery, backfilled_prometheus: PromServer
) -> None:
    span = last_hour(backfilled_prometheus)
    assert set(prom.backup_duration(*span)["value"]) == {12.5}
    assert set(prom.backup_size(*span)["value"]) == {300.0 * promserver.MIB}


def test_backup_age_is_the_time_since_the_last_0300_utc(
    prom: PromQuery, backfilled_prometheus: PromServer
) -> None:
    age = prom.backup_age_seconds()
    now = time.time()
    assert age is not None
    assert age == pytest.approx(now - backfilled_prometheus.scenario.last_backup(now), abs=30)


def test_headline_gives_the_four_overview_numbers(prom: PromQuery, backfilled_prometheus: PromServer) -> None:
    at = datetime.fromtimestamp(backfilled_prometheus.backfill_end, UTC)
    headline = prom.headline(at=at)
    scenario = backfilled_prometheus.scenario
    assert set(headline) == {"error_rate", "p95_latency", "backup_age_seconds", "total_index_bytes"}
    assert headline["error_rate"] == pytest.approx(0.08, rel=1e-6)
    assert headline["p95_latency"] == pytest.approx(0.75, rel=1e-6)
    assert headline["backup_age_seconds"] == pytest.approx(
        at.timestamp() - scenario.last_backup(at.timestamp())
    )
    expected_total = sum(scenario.index_size(layer, at.timestamp()) for layer in LAYERS)
    assert headline["total_index_bytes"] == pytest.approx(expected_total, rel=1e-4)


def test_alerts_lists_the_error_rate_alert_with_its_annotations(
    prom: PromQuery, backfilled_prometheus: PromServer
) -> None:
    deadline = time.monotonic() + 30
    alerts = prom.alerts()
    while time.monotonic() < deadline and "JameyRateLimitSurge" not in set(alerts["alertname"]):
        time.sleep(0.5)
        alerts = prom.alerts()
    assert list(alerts.columns) == [
        "alertname", "state", "severity", "labels", "annotations", "active_at", "value", "summary", "runbook_url",
    ]  # fmt: skip
    # 8% errors: the warning is pending or firing, the critical (20%) is not there at all
    errors = alerts[alerts["alertname"] == "JameyHighErrorRate"]
    assert len(errors) == 1, alerts
    alert = errors.iloc[0]
    assert alert["state"] in {"pending", "firing"}
    assert alert["severity"] == "warning"
    assert alert["summary"] == "8% of Jamey API requests fail with 5xx"
    assert alert["runbook_url"] == "http://127.0.0.1:8501/alerts?alert=JameyHighErrorRate"
    assert alert["labels"]["job"] == "jamey"
    assert alert["value"] == pytest.approx(0.08, rel=1e-6)
    assert alert["active_at"] <= pd.Timestamp.now(tz="UTC")
    assert "JameyServiceDown" not in set(alerts["alertname"])


# --- the recording rules in a real Prometheus agree with the module ----------------------------


def test_recording_rules_evaluate_and_agree_with_the_module(
    backfilled_prometheus: PromServer, prom: PromQuery
) -> None:
    deadline = time.monotonic() + 20
    names = (
        "job:http_request_errors:ratio_rate5m",
        "job:http_request_duration_seconds:histogram_quantile",
        "layer:memory_index_size_bytes:sum",
        "job_status:http_requests:rate5m",
        "job_scope:rate_limited_requests:rate5m",
    )
    results = {name: backfilled_prometheus.query(name) for name in names}
    while time.monotonic() < deadline and not all(results.values()):
        time.sleep(0.5)
        results = {name: backfilled_prometheus.query(name) for name in names}
    assert all(results.values()), (results, backfilled_prometheus.log())
    # live samples come from scrapes whose timestamps jitter by milliseconds: 0.1% tolerance

    def values(name: str, label: str | None = None) -> dict[str, float]:
        return {str(r["metric"].get(label, "")) if label else "": float(r["value"][1]) for r in results[name]}  # type: ignore[index,union-attr]

    assert values("job:http_request_errors:ratio_rate5m") == pytest.approx({"": 0.08}, rel=1e-3)
    assert values("job:http_request_duration_seconds:histogram_quantile", "quantile") == pytest.approx(
        {"0.5": 0.0375, "0.95": 0.75, "0.99": 2.5}, rel=1e-3
    )
    assert values("job_status:http_requests:rate5m", "status")["500"] == pytest.approx(0.48, rel=1e-3)
    assert values("job_scope:rate_limited_requests:rate5m", "scope") == pytest.approx(
        {"key": 1.0, "global": 0.0}, rel=1e-3
    )
    now = datetime.now(UTC)
    module = prom.instant("index_size", at=now).set_index("layer")["value"].to_dict()
    assert values("layer:memory_index_size_bytes:sum", "layer") == pytest.approx(module, rel=1e-4)


def test_the_chart_thresholds_are_the_declared_warning_thresholds() -> None:
    """The numbers themselves are held equal to the rules by tests/test_thresholds.py."""
    assert promql.ERROR_RATE_THRESHOLD == thresholds.ERROR_RATE_WARNING
    assert promql.P95_LATENCY_THRESHOLD == thresholds.P95_LATENCY_WARNING_SECONDS
    assert promql.INDEX_SIZE_THRESHOLD == thresholds.INDEX_SIZE_WARNING_BYTES
    assert thresholds.BACKUP_MAX_AGE.total_seconds() == promql.BACKUP_AGE_THRESHOLD


# --- links to Prometheus ----------------------------------------------------------------------


def test_query_link_opens_the_same_query_and_range_in_prometheus(
    prom: PromQuery, backfilled_prometheus: PromServer
) -> None:
    start, end = last_hour(backfilled_prometheus)
    link = prom.query_link("error_rate", start, end)
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}" == backfilled_prometheus.url
    assert parts.path == "/graph"
    params = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert params["g0.expr"] == prom.expression("error_rate", choose_step(start, end))
    assert params["g0.range_input"] == "1h"
    assert params["g0.end_input"] == end.strftime("%Y-%m-%d %H:%M:%S")
    assert params["g0.tab"] == "0"
    # the linked expression is valid PromQL with data behind it
    assert backfilled_prometheus.query(params["g0.expr"])


def test_every_series_has_a_link_and_unknown_names_are_refused(prom: PromQuery) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for name in promql.SERIES:
        assert "g0.expr=" in prom.query_link(name, start, start + timedelta(days=7))
    with pytest.raises(InvalidInput, match="unknown series 'errors'; known: error_rate"):
        prom.query_link("errors", start, start + timedelta(hours=1))


# --- no data, unreachable, bad query ----------------------------------------------------------


def test_no_data_is_its_own_error_and_a_kind_of_not_found(backfilled_prometheus: PromServer) -> None:
    start, end = last_hour(backfilled_prometheus)
    with PromQuery(backfilled_prometheus.url, job="not-scraped") as other:
        with pytest.raises(NoData, match="No data for share of api requests answered 5xx between") as err:
            other.error_rate(start, end)
        assert isinstance(err.value, NotFound)
        assert other.headline() == {
            "error_rate": None,
            "p95_latency": None,
            "backup_age_seconds": None,
            "total_index_bytes": None,
        }
        assert other.backup_age_seconds() is None


def test_a_range_before_any_data_is_no_data(prom: PromQuery, backfilled_prometheus: PromServer) -> None:
    end = datetime.fromtimestamp(backfilled_prometheus.backfill_end, UTC) - timedelta(days=30)
    with pytest.raises(NoData):
        prom.index_size(end - timedelta(hours=6), end)


def test_no_alerts_is_an_empty_frame_with_the_columns(tmp_path: Path) -> None:
    prometheus = promserver.require_binary("prometheus")
    port = free_port()
    config = tmp_path / "p.yml"
    config.write_text("global: {evaluation_interval: 1s}\n")
    import subprocess

    log = tmp_path / "log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until_listening(process, port, timeout=60)
        promserver.wait_ready(f"http://127.0.0.1:{port}", process, log)
        with PromQuery(f"http://127.0.0.1:{port}") as empty:
            alerts = empty.alerts()
            assert alerts.empty
            assert "alertname" in alerts.columns and "runbook_url" in alerts.columns
            empty.ping()
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_a_closed_port_is_unreachable_with_how_to_start_prometheus() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with PromQuery(url, timeout=2) as prom:
        now = datetime.now(UTC)
        with pytest.raises(PrometheusUnreachable) as err:
            prom.error_rate(now - timedelta(hours=1), now)
        assert isinstance(err.value, Unavailable)
        assert str(err.value).startswith(f"Prometheus unreachable at {url}")
        assert "start it with `make run` or `prometheus --config.file=prometheus/prometheus.yml`" in str(
            err.value
        )
        with pytest.raises(PrometheusUnreachable):
            prom.alerts()
        with pytest.raises(PrometheusUnreachable):
            prom.headline()
        with pytest.raises(PrometheusUnreachable):
            prom.ping()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def test_a_prometheus_that_never_answers_times_out(silent_server: str) -> None:
    with PromQuery(silent_server, timeout=0.5) as prom:
        now = datetime.now(UTC)
        with pytest.raises(PrometheusUnreachable, match=r"no answer within 0\.5s"):
            prom.error_rate(now - timedelta(hours=1), now)


class _NotPrometheus(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 404 if "alerts" in self.path else 200
        body = b"<html>a web page</html>"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_server_that_is_not_prometheus_is_reported_as_unreachable() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotPrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with PromQuery(f"http://127.0.0.1:{server.server_address[1]}", timeout=2) as prom:
            now = datetime.now(UTC)
            with pytest.raises(PrometheusUnreachable, match="not Prometheus' API"):
                prom.error_rate(now - timedelta(hours=1), now)
            with pytest.raises(PrometheusUnreachable, match="HTTP 404"):
                prom.alerts()
    finally:
        server.shutdown()
        server.server_close()


def test_a_bad_query_is_a_bad_query_with_prometheus_reason(
    prom: PromQuery, backfilled_prometheus: PromServer
) -> None:
    start, end = last_hour(backfilled_prometheus)
    with pytest.raises(BadQuery, match=r"Prometheus refused the query: .*parse error") as err:
        prom.custom_range("sum(rate(http_requests_total[5m]", start, end)
    assert isinstance(err.value, InvalidInput)
    assert "parse error" in err.value.detail


def test_custom_range_returns_the_labels_asked_for(
    prom: PromQuery, backfilled_prometheus: PromServer
) -> None:
    start, end = last_hour(backfilled_prometheus)
    frame = prom.custom_range('sum by (layer) (memory_documents{job="jamey"})', start, end, labels=("layer",))
    assert_tidy(frame, ("layer",))
    assert set(frame["layer"]) == set(LAYERS)


def test_settings_give_the_url_and_timeout() -> None:
    settings = Settings.from_env({"PROMETHEUS_URL": "http://127.0.0.1:9999/", "PROMETHEUS_TIMEOUT": "3.5"})
    with PromQuery.from_settings(settings) as prom:
        assert prom.url == "http://127.0.0.1:9999"
        assert prom.timeout == 3.5


def test_a_zero_timeout_and_an_odd_job_are_refused() -> None:
    with pytest.raises(InvalidInput, match="timeout must be above zero, got 0"):
        PromQuery("http://127.0.0.1:9090", timeout=0)
    with pytest.raises(InvalidInput, match="job must be a plain scrape job name"):
        PromQuery("http://127.0.0.1:9090", job='x"} or vector(1) #')


def test_rate_windows_grow_with_the_step_and_never_drop_below_five_minutes() -> None:
    prom = PromQuery("http://127.0.0.1:9090")
    assert prom.windows(timedelta(seconds=1)) == ("5m", "1h")
    assert prom.windows(timedelta(minutes=15)) == ("15m", "1h")
    assert prom.windows(timedelta(hours=2)) == ("2h", "2h")
    assert "[15m]" in prom.expression("error_rate", timedelta(minutes=15))
    assert "[5m]" in prom.expression("error_rate", timedelta(seconds=1))
    assert "[2h]" in prom.expression("error_rate", timedelta(hours=2))
    prom.close()


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(minutes=5), "5m"),
        (timedelta(hours=1), "1h"),
        (timedelta(minutes=90), "90m"),
        (timedelta(days=7), "1w"),
        (timedelta(days=2), "2d"),
        (timedelta(seconds=45), "45s"),
        (timedelta(0), "1s"),
    ],
)
def test_format_duration_writes_prometheus_durations(delta: timedelta, text: str) -> None:
    assert promql.promql_duration(delta) == text


def test_naive_datetimes_are_taken_as_utc() -> None:
    naive = datetime(2026, 1, 1, 12, 0)
    assert choose_step(naive, naive + timedelta(hours=1)) == choose_step(
        naive.replace(tzinfo=UTC), naive.replace(tzinfo=UTC) + timedelta(hours=1)
    )
    with PromQuery("http://127.0.0.1:9090") as prom:
        link = prom.query_link("error_rate", naive, naive + timedelta(hours=1))
    assert "g0.end_input=2026-01-01+13%3A00%3A00" in link
