"""notebooks/diagnose_alert.ipynb under papermill (a real kernel) against a real Prometheus with
the project's rules: three families, each ending with the summary the runner stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from notebook_runner import run_notebook
from promserver import PromServer

from jamey_engine.runbooks.runner import summary_of

pytestmark = pytest.mark.slow

NOTEBOOK = "diagnose_alert.ipynb"
PLOTLY = "application/vnd.plotly.v1+json"


@pytest.mark.parametrize(
    ("alertname", "labels", "verdict", "suggested"),
    [
        ("JameyHighErrorRate", {"severity": "warning"}, "8.0% of API requests fail with 5xx", None),
        ("JameyMemoryIndexTooLarge", {"layer": "semantic"}, "Layer semantic's index is", "prune_memories"),
        ("JameyBackupTooOld", {}, "The last successful backup is", "take_backup"),
    ],
)
def test_the_notebook_returns_the_family_s_verdict_evidence_and_charts(
    seeded_dir: Path,
    tmp_path: Path,
    backfilled_prometheus: PromServer,
    alertname: str,
    labels: dict[str, str],
    verdict: str,
    suggested: str | None,
) -> None:
    run = run_notebook(
        NOTEBOOK,
        tmp_path,
        data_dir=str(seeded_dir),
        alertname=alertname,
        labels=json.dumps(labels),
        starts_at="",
        prometheus_url=backfilled_prometheus.url,
    )
    summary = summary_of(run.notebook)
    assert summary is not None, run.text
    assert summary["verdict"].startswith(verdict) or verdict in summary["verdict"], summary
    assert summary["suggested_runbook"] == suggested
    assert summary["alertname"] == alertname and summary["evidence"], summary
    assert summary["verdict"] in run.text
    assert run.has(PLOTLY)


def test_an_alert_not_in_the_rules_ends_with_an_error_summary(seeded_dir: Path, tmp_path: Path) -> None:
    run = run_notebook(NOTEBOOK, tmp_path, data_dir=str(seeded_dir), alertname="NoSuchAlert")
    summary = summary_of(run.notebook)
    assert summary is not None
    assert summary["verdict"] is None
    assert "alertname 'NoSuchAlert' is not an alert of prometheus/rules/" in summary["error"]
    assert "error: alertname 'NoSuchAlert'" in run.text
