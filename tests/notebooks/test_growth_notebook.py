"""notebooks/memory_growth.ipynb under papermill: with Prometheus down, and with a real one."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import closed_port
from notebook_runner import run_notebook
from promserver import MIB, PromServer
from seed_data import Lines

from jamey_engine.runbooks import GrowthReport

# Each test starts a kernel (2-3 s) per notebook run.
pytestmark = pytest.mark.slow

NOTEBOOK = "memory_growth.ipynb"
PLOTLY = "application/vnd.plotly.v1+json"


def test_with_prometheus_down_it_notes_it_and_projects_from_the_index(
    seeded_dir: Path, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    run = run_notebook(NOTEBOOK, tmp_path, data_dir=str(seeded_dir), days=14, prometheus_url=url)
    assert "Note: no Prometheus history (" in run.text
    assert "bytes per day from the index (estimated bytes)" in run.text
    assert "total:" in run.text
    assert run.has(PLOTLY)


def test_with_prometheus_it_uses_the_measured_history(
    seeded_dir: Path, tmp_path: Path, backfilled_prometheus: PromServer
) -> None:
    run = run_notebook(
        NOTEBOOK, tmp_path, data_dir=str(seeded_dir), days=7, prometheus_url=backfilled_prometheus.url
    )
    assert f"Prometheus history from {backfilled_prometheus.url}" in run.text
    assert "bytes per day from Prometheus (measured bytes)" in run.text
    assert "crosses 1.0 GiB around" in run.text
    assert run.has(PLOTLY)


def test_prometheus_history_gives_measured_rates_and_a_crossing_date(
    seeded_dir: Path, backfilled_prometheus: PromServer
) -> None:
    # In process, beside the notebook test, so one backfilled Prometheus serves both.
    lines = Lines()
    report = GrowthReport.open(
        data_dir=seeded_dir, days=7, prometheus_url=backfilled_prometheus.url, say=lines
    )
    assert report.index_history() is not None
    try:
        measured = report.prometheus_history()
        rates = report.growth_rates()
        projection = report.crossing()
    finally:
        report.close()
    assert measured is not None, lines.text
    assert report.rate_source == "Prometheus (measured bytes)"
    assert rates is not None and projection is not None
    by_layer = rates.set_index("layer")["bytes_per_day"]
    # The scenario grows layer i (1-based) by 10 MiB * i a day: working is the third layer.
    assert by_layer["working"] == pytest.approx(30 * MIB, rel=0.02)
    assert by_layer["total"] == pytest.approx(150 * MIB, rel=0.02)
    total = projection.set_index("layer").loc["total"]
    assert total["status"] == "crosses"
    assert total["days_left"] == pytest.approx(1024 / 150, rel=0.02)
