"""Query-module benchmarks against a real Prometheus holding 7 days of Jamey data.

The Prometheus is the test suite's (tests/promserver.py): 7 days backfilled at one sample a
minute by promtool, live scrapes every second, the project's rules loaded.

1. The dashboards page's data: every chart series (error rate, latency quantiles, request rate,
   rate limits, backup counts/duration/size, index size) over 7 days through ``PromQuery``.
   Target: under 1.0 s in all, so the page fits its 1.5 s render budget with room for plotly.
   Baseline: the same PromQL through bare ``requests`` + ``json`` (no DataFrames), to show the
   module's own overhead.
2. The overview's headline numbers (four instant queries). Target under 0.25 s.
3. Points per series for 7 days (the step policy). Target <= 1000.

Run alone: ``.venv/bin/python -m bench.bench_promql [--quick]`` (--quick: 6 hours of data).
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from bench.common import Row, cli, median_seconds, row
from jamey_engine.observability.dashboards import chart_specs

ROOT = Path(__file__).resolve().parents[1]
CHARTS = tuple(spec.name for spec in chart_specs())  # the dashboards' series


def main(quick: bool = False) -> list[Row]:
    """Start the backfilled Prometheus, time the dashboard queries, return the rows."""
    sys.path.insert(0, str(ROOT / "tests"))
    import promserver

    from jamey_engine.observability.promql import PromQuery, choose_step

    days = 0.25 if quick else 7.0
    repeat = 3 if quick else 7
    with tempfile.TemporaryDirectory(prefix="bench-promql-") as tmp:
        server = promserver.start_prometheus(Path(tmp) / "prometheus", days=days)
        try:
            end = datetime.fromtimestamp(server.backfill_end, UTC)
            start = end - timedelta(days=days) + timedelta(minutes=10)
            step = choose_step(start, end)
            prom = PromQuery(server.url, timeout=30)
            session = requests.Session()

            def module_dashboards() -> None:
                for name in CHARTS:
                    prom.range(name, start, end)

            def raw_dashboards() -> None:
                for name in CHARTS:
                    params: dict[str, str | float] = {
                        "query": prom.expression(name, step),
                        "start": start.timestamp(),
                        "end": end.timestamp(),
                        "step": step.total_seconds(),
                    }
                    response = session.get(f"{server.url}/api/v1/query_range", params=params, timeout=30)
                    response.raise_for_status()
                    response.json()

            module_dashboards()  # warm Prometheus' page cache once for both
            dashboards = median_seconds(module_dashboards, repeat)
            baseline = median_seconds(raw_dashboards, repeat)
            headline = median_seconds(prom.headline, repeat)
            points = int(prom.request_rate(start, end).groupby(["route", "status"]).size().max())
            prom.close()
        finally:
            server.stop()
    label = f"{days:g} days"
    return [
        row(
            f"promql: dashboards, {len(CHARTS)} series over {label}",
            "seconds (median)",
            dashboards,
            baseline=baseline,
            target="< 1.0 s",
            met=dashboards < 1.0,
            higher_is_better=False,
        ),
        row(
            "promql: overview headline (4 instant queries)",
            "seconds (median)",
            headline,
            target="< 0.25 s",
            met=headline < 0.25,
            higher_is_better=False,
        ),
        row(
            f"promql: points per series over {label} (step {step})",
            "points",
            float(points),
            target="<= 1000",
            met=points <= 1000,
            higher_is_better=False,
        ),
    ]


if __name__ == "__main__":
    cli(main)
