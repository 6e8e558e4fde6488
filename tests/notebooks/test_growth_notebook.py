"""notebooks/memory_growth.ipynb under papermill: with Prometheus down, and with a real one."""

from __future__ import annotations

from pathlib import Path

from helpers import free_port
from notebook_runner import run_notebook
from promserver import PromServer

NOTEBOOK = "memory_growth.ipynb"
PLOTLY = "application/vnd.plotly.v1+json"


def test_with_prometheus_down_it_notes_it_and_projects_from_the_index(
    seeded_dir: Path, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
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
