"""The Prometheus client of the workbench, the notebooks and the runbooks. Every PromQL expression
they use is declared once in ``promql_series`` (the named series and the step policy) and
re-exported here, so callers keep importing ``promql``.

``PromQuery`` asks Prometheus (or anything speaking its HTTP API: Thanos, Mimir,
VictoriaMetrics) through prometheus-api-client and returns tidy pandas DataFrames: one row per
sample, columns ``timestamp`` (UTC), ``value`` (float) and one column per label that names a
series (``layer``, ``status``...).

The policy lives here too:
- every request has a timeout (the client's default is none), PROMETHEUS_TIMEOUT seconds;
- a range never asks for more than ``MAX_POINTS`` points per series (``choose_step``);
  Prometheus refuses over 11,000;
- failures are told apart: ``NoData`` (the query ran, nothing matched), ``PrometheusUnreachable``
  (nothing answered, or it was not Prometheus) and ``BadQuery`` (Prometheus refused the query);
- rates use a window of at least 5 minutes and at least one step, so a long range at a coarse
  step still counts every request (what Grafana calls ``$__rate_interval``).

The charts compute from the raw series rather than from the recording rules, so they also
cover history recorded before the rules were loaded and work on stores without our rules.
The alert thresholds are constants here; a test checks they match prometheus/rules/alerts.yml.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pandas as pd
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from jamey_engine import ports, thresholds
from jamey_engine.errors import InvalidInput, NotFound, Unavailable
from jamey_engine.observability.promql_series import (  # the named series, re-exported below
    BACKUP_COUNT_WINDOW,
    DEFAULT_RATE_WINDOW,
    MAX_POINTS,
    QUANTILES,
    SERIES,
    STEPS,
    SeriesSpec,
    choose_step,
    promql_duration,
)
from jamey_engine.observability.promql_series import utc as _utc
from jamey_engine.observability.promresult import parse_client_error, tidy, to_float
from jamey_engine.redact import redact_url, strip_userinfo
from jamey_engine.urls import NoRedirectSession, excerpt

__all__ = [
    "BACKUP_AGE_THRESHOLD",
    "BACKUP_COUNT_WINDOW",
    "DEFAULT_RATE_WINDOW",
    "ERROR_RATE_THRESHOLD",
    "INDEX_SIZE_THRESHOLD",
    "MAX_POINTS",
    "P95_LATENCY_THRESHOLD",
    "QUANTILES",
    "SERIES",
    "STEPS",
    "BadQuery",
    "NoData",
    "PromQuery",
    "PrometheusUnreachable",
    "SeriesSpec",
    "choose_step",
    "promql_duration",
]

if TYPE_CHECKING:
    from jamey_engine.config import Settings

#: The alert thresholds the charts and cards draw (warning level; declared in jamey_engine.thresholds).
ERROR_RATE_THRESHOLD = thresholds.ERROR_RATE_WARNING
P95_LATENCY_THRESHOLD = thresholds.P95_LATENCY_WARNING_SECONDS
INDEX_SIZE_THRESHOLD = thresholds.INDEX_SIZE_WARNING_BYTES
#: Seconds since the last successful backup before JameyBackupTooOld fires.
BACKUP_AGE_THRESHOLD = thresholds.BACKUP_MAX_AGE.total_seconds()


class NoData(NotFound):
    """The query ran, but Prometheus has no samples for it in the range asked."""


class PrometheusUnreachable(Unavailable):
    """Prometheus did not answer (refused, timed out) or answered like something else."""


class BadQuery(InvalidInput):
    """Prometheus refused the query (HTTP 400 or 422): ``detail`` is its reason."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class PromQuery:
    """Queries the Jamey series in Prometheus at ``url``; every request gives up after ``timeout`` s.

    ``job`` is the scrape job of the service (``jamey`` in prometheus/prometheus.yml).
    ``rate_window`` is the shortest window rates are taken over (5 minutes; tests with a 1 s
    scrape interval may shorten it). Naive datetimes are taken as UTC.
    Every query method raises NoData (nothing matched), PrometheusUnreachable (refused, timed
    out, or not Prometheus) or BadQuery (Prometheus refused the PromQL); never a client error.
    """

    def __init__(
        self,
        url: str = ports.local_url(ports.PROMETHEUS),
        timeout: float = 10.0,
        *,
        job: str = "jamey",
        rate_window: timedelta = DEFAULT_RATE_WINDOW,
    ) -> None:
        if timeout <= 0:
            raise InvalidInput(f"timeout must be above zero, got {timeout!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.:-]+", job):
            raise InvalidInput(f"job must be a plain scrape job name, got {job!r}")
        self.url = url.rstrip("/")
        # What messages and links show: PROMETHEUS_URL may carry user:password@.
        self.shown_url = redact_url(self.url)
        self.timeout = float(timeout)
        self.job = job
        self.rate_window = rate_window
        self._session = NoRedirectSession()  # a redirect is an answer, never followed
        # One quick retry of a refused connection; a read timeout raises at once (read=False) and
        # HTTP statuses are mapped by _call, never retried.
        retry = Retry(
            total=1, connect=1, read=False, status=0, other=0, backoff_factor=0.1, raise_on_status=False
        )
        self._client = PrometheusConnect(
            url=self.url, session=self._session, retry=retry, timeout=self.timeout
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> PromQuery:
        """A PromQuery on PROMETHEUS_URL with PROMETHEUS_TIMEOUT."""
        return cls(settings.prometheus_url, settings.prometheus_timeout)

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> PromQuery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- building queries --------------------------------------------------------------------

    @property
    def selector(self) -> str:
        """The label matcher every query starts from."""
        return f'job="{self.job}"'

    def windows(self, step: timedelta) -> tuple[str, str]:
        """The rate window and backup-count window for a query at ``step``."""
        rate = max(self.rate_window, step)
        count = max(BACKUP_COUNT_WINDOW, step)
        return promql_duration(rate), promql_duration(count)

    def expression(self, name: str, step: timedelta | None = None) -> str:
        """The PromQL of the named series (a key of ``SERIES``) at ``step``.

        Raises InvalidInput for an unknown name, listing the known ones.
        """
        spec = self._spec(name)
        rate_window, count_window = self.windows(step or timedelta(0))
        return spec.build(self.selector, rate_window, count_window)

    def query_link(self, name: str, start: datetime, end: datetime) -> str:
        """The URL of the same query, range and step in Prometheus' graph page."""
        step = choose_step(start, end)
        params = {
            "g0.expr": self.expression(name, step),
            "g0.tab": "0",
            "g0.range_input": promql_duration(_utc(end, "end") - _utc(start, "start")),
            "g0.end_input": _utc(end, "end").strftime("%Y-%m-%d %H:%M:%S"),
            "g0.step_input": str(int(step.total_seconds())),
        }
        return f"{strip_userinfo(self.url)}/graph?{urlencode(params)}"

    # --- range series ------------------------------------------------------------------------

    def range(self, name: str, start: datetime, end: datetime) -> pd.DataFrame:
        """The named series over ``[start, end]`` at ``choose_step``; see the class for errors."""
        spec = self._spec(name)
        expr = self.expression(name, choose_step(start, end))
        return self._range(expr, start, end, spec.labels, spec.description.lower())

    def custom_range(
        self, expr: str, start: datetime, end: datetime, labels: Sequence[str] = ()
    ) -> pd.DataFrame:
        """Any PromQL over ``[start, end]`` (for analysts' notebooks), same step policy and
        errors as the named series; ``labels`` become columns. Raises BadQuery for bad PromQL."""
        return self._range(expr, start, end, tuple(labels), f"`{expr}`")

    def _range(
        self, expr: str, start: datetime, end: datetime, labels: tuple[str, ...], what: str
    ) -> pd.DataFrame:
        step = choose_step(start, end)
        start, end = _utc(start, "start"), _utc(end, "end")
        raw = self._call(
            lambda: self._client.custom_query_range(
                expr,
                start_time=start,
                end_time=end,
                step=f"{int(step.total_seconds())}s",
                params={"timeout": f"{self.timeout:g}s"},
            )
        )
        frame = tidy(raw, labels)
        if frame.empty:
            raise NoData(
                f"No data for {what} between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC "
                f"in Prometheus at {self.shown_url}"
            )
        return frame

    def error_rate(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Share of API requests (scrapes of /metrics left out) answered 5xx: 0.05 is 5%."""
        return self.range("error_rate", start, end)

    def latency_quantiles(self, start: datetime, end: datetime) -> pd.DataFrame:
        """API latency p50, p95 and p99 in seconds; column ``quantile`` is "0.5", "0.95", "0.99"."""
        return self.range("latency_quantiles", start, end)

    def request_rate(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Requests per second by ``route`` and ``status`` (every route, /metrics included)."""
        return self.range("request_rate", start, end)

    def backup_counts(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Backups by ``status`` (success, failure) in the hour (or step) before each point."""
        return self.range("backup_counts", start, end)

    def backup_duration(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Duration in seconds of the last backup, as reported at each point."""
        return self.range("backup_duration", start, end)

    def backup_size(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Size in bytes of the last backup archive, as reported at each point."""
        return self.range("backup_size", start, end)

    def index_size(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Bytes on disk of each memory layer's index; column ``layer``."""
        return self.range("index_size", start, end)

    def index_documents(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Documents in each memory layer; column ``layer``."""
        return self.range("index_documents", start, end)

    def rate_limited(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Requests refused by a rate limit per second; column ``scope`` (key, global)."""
        return self.range("rate_limited", start, end)

    # --- instant values ----------------------------------------------------------------------

    def instant(self, name: str, at: datetime | None = None) -> pd.DataFrame:
        """The named series at one moment (now by default), with the 5-minute rate window.

        Returns a DataFrame like ``range`` (one row per series); raises NoData when empty.
        """
        spec = self._spec(name)
        expr = self.expression(name)
        params = {"timeout": f"{self.timeout:g}s"}
        if at is not None:
            params["time"] = f"{_utc(at, 'at').timestamp():.3f}"
        raw = self._call(lambda: self._client.custom_query(expr, params=params))
        frame = tidy(raw, spec.labels)
        if frame.empty:
            raise NoData(f"No current data for {spec.description.lower()} in Prometheus at {self.shown_url}")
        return frame

    def _scalar(self, name: str, at: datetime | None, where: dict[str, str] | None = None) -> float | None:
        try:
            frame = self.instant(name, at)
        except NoData:
            return None
        for column, value in (where or {}).items():
            frame = frame[frame[column] == value]
        return float(frame["value"].iloc[0]) if not frame.empty else None

    def backup_age_seconds(self, at: datetime | None = None) -> float | None:
        """Seconds since the last successful backup, or None when no backup ever succeeded
        (or the service is not scraped). Raises PrometheusUnreachable / BadQuery."""
        return self._scalar("backup_age", at)

    def headline(self, at: datetime | None = None) -> dict[str, float | None]:
        """The overview's four numbers: error_rate, p95_latency (s), backup_age_seconds and
        total_index_bytes; each None when Prometheus has no data for it."""
        return {
            "error_rate": self._scalar("error_rate", at),
            "p95_latency": self._scalar("latency_quantiles", at, {"quantile": "0.95"}),
            "backup_age_seconds": self._scalar("backup_age", at),
            "total_index_bytes": self._scalar("total_index_size", at),
        }

    def alerts(self) -> pd.DataFrame:
        """Pending and firing alerts from ``/api/v1/alerts``, one row each.

        Columns: alertname, state, severity, labels (dict), annotations (dict), active_at (UTC),
        value (float or NaN), summary, runbook_url. An empty frame (same columns) when none fire.
        """
        url = f"{self.url}/api/v1/alerts"

        def fetch() -> Any:
            response = self._session.get(url, timeout=self.timeout)
            if response.status_code != 200:
                raise PrometheusApiClientException(
                    f"HTTP Status Code {response.status_code} ({response.content!r})"
                )
            return response.json()["data"]["alerts"]

        rows = []
        for alert in self._call(fetch):
            labels = dict(alert.get("labels", {}))
            annotations = dict(alert.get("annotations", {}))
            rows.append(
                {
                    "alertname": labels.get("alertname", ""),
                    "state": alert.get("state", ""),
                    "severity": labels.get("severity", ""),
                    "labels": labels,
                    "annotations": annotations,
                    "active_at": pd.to_datetime(alert.get("activeAt"), utc=True, errors="coerce"),
                    "value": to_float(alert.get("value")),
                    "summary": annotations.get("summary", ""),
                    "runbook_url": annotations.get("runbook_url", ""),
                }
            )
        columns = [
            "alertname",
            "state",
            "severity",
            "labels",
            "annotations",
            "active_at",
            "value",
            "summary",
            "runbook_url",
        ]
        frame = pd.DataFrame(rows, columns=columns)
        frame["active_at"] = pd.to_datetime(frame["active_at"], utc=True)
        return frame.sort_values(["state", "severity", "alertname"], ignore_index=True)

    def ping(self) -> None:
        """Return when Prometheus answers its readiness check; raise PrometheusUnreachable otherwise."""

        def ready() -> None:
            response = self._session.get(f"{self.url}/-/ready", timeout=self.timeout)
            if response.status_code != 200:
                raise PrometheusApiClientException(
                    f"HTTP Status Code {response.status_code} ({response.content!r})"
                )

        self._call(ready)

    # --- plumbing ----------------------------------------------------------------------------

    def _spec(self, name: str) -> SeriesSpec:
        try:
            return SERIES[name]
        except KeyError:
            raise InvalidInput(f"unknown series {name!r}; known: {', '.join(SERIES)}") from None

    def _unreachable(self, why: str) -> PrometheusUnreachable:
        return PrometheusUnreachable(
            f"Prometheus unreachable at {self.shown_url} ({why}); start it with `make run` "
            "or `prometheus --config.file=prometheus/prometheus.yml`"
        )

    def _call(self, request: Callable[[], Any]) -> Any:
        """Run one request, turning every failure into NoData/PrometheusUnreachable/BadQuery."""
        try:
            return request()
        except requests.JSONDecodeError:  # a 200 that is not Prometheus' JSON
            raise self._unreachable("the answer was not Prometheus' API") from None
        except requests.Timeout:
            raise self._unreachable(f"no answer within {self.timeout:g}s") from None
        except requests.ConnectionError:
            raise self._unreachable("connection refused or reset") from None
        except requests.RequestException as err:
            raise self._unreachable(type(err).__name__) from None
        except PrometheusApiClientException as err:
            status, detail = parse_client_error(str(err))
            detail = excerpt(detail)
            if status in (400, 422):
                raise BadQuery(f"Prometheus refused the query: {detail}", detail) from None
            if status == 503 and "timeout" in detail.lower():
                raise self._unreachable(f"the query timed out: {detail}") from None
            raise self._unreachable(f"HTTP {status}: {detail}") from None
        except (ValueError, KeyError, TypeError):  # a 200 that is not Prometheus' JSON
            raise self._unreachable("the answer was not Prometheus' API") from None
