"""The growth report on a real index with Prometheus down (with a real one: tests/notebooks/test_growth_notebook.py)."""

from __future__ import annotations

from pathlib import Path

from helpers import closed_port
from seed_data import NEW_PER_LAYER, OLD_PER_LAYER, Lines

from jamey_engine.runbooks import GrowthReport


def _report(data_dir: Path, url: str, lines: Lines, days: int = 7) -> GrowthReport:
    report = GrowthReport.open(data_dir=data_dir, days=days, prometheus_url=url, say=lines)
    assert report.index_history() is not None
    return report


def test_unreachable_prometheus_is_a_note_and_the_index_figures_stand(seeded_dir: Path) -> None:
    lines = Lines()
    report = _report(seeded_dir, f"http://127.0.0.1:{closed_port()}", lines)
    try:
        assert report.prometheus_history() is None
        rates = report.growth_rates()
        projection = report.crossing()
    finally:
        report.close()
    assert not report.stopped
    assert any(line.startswith("Note: no Prometheus history (") for line in lines)
    assert report.rate_source == "the index (estimated bytes)"
    assert rates is not None and projection is not None
    history = report.history
    assert history is not None
    working = history[history["layer"] == "working"]
    # One new memory a day over the last NEW_PER_LAYER days (of 7); the old ones predate the window.
    assert working["documents"].iloc[-1] == OLD_PER_LAYER + NEW_PER_LAYER
    assert working["documents"].iloc[0] == OLD_PER_LAYER
    assert rates.set_index("layer").loc["working", "documents_per_day"] > 0
    assert list(projection["layer"])[-1] == "total"
    table = report.wide(history, "documents")
    assert table is not None
    assert list(table.columns) == ["short_term", "long_term", "working", "episodic", "semantic", "total"]
    assert table.iloc[-1]["total"] == 2 * (OLD_PER_LAYER + NEW_PER_LAYER)
    assert report.wide(None, "bytes") is None
    assert report.chart(history, y="documents", title="t") is not None
    assert report.crossing_chart() is not None
