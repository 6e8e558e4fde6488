"""notebooks/explore_memories.ipynb under papermill on real data: charts, tables, the summary, bad input."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from notebook_runner import fingerprint, run_notebook
from seed_data import NEW_PER_LAYER

from jamey_engine.config import Settings
from jamey_engine.engine import Engine

pytestmark = pytest.mark.slow

NOTEBOOK = "explore_memories.ipynb"


def _summary(text: str) -> dict[str, object]:
    start = text.rindex("{'layer'")
    return dict(ast.literal_eval(text[start:]))


def test_it_explores_a_window_draws_plotly_charts_and_ends_with_a_summary(
    seeded_dir: Path, tmp_path: Path
) -> None:
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(seeded_dir)}))
    try:
        engine.memory.store_batch("working", ["Disk full on node 3", "disk  FULL on node 3"])
    finally:
        engine.close()
    before = fingerprint(seeded_dir)
    run = run_notebook(NOTEBOOK, tmp_path, data_dir=str(seeded_dir), since="30d")
    assert run.has("application/vnd.plotly.v1+json")
    summary = _summary(run.text)
    # The seed's new memories (one a day, within a week) and the two just stored; the old ones are 40+ days back.
    assert summary["documents"] == 2 * NEW_PER_LAYER + 2
    assert summary["top_terms"][:2] == ["harbour", "new"]  # in every new memory; "about" is a stop word
    assert summary["duplicates"] == 1
    assert summary["top_repeated"] == {"content": "Disk full on node 3", "count": 2}
    assert summary["error"] is None
    assert "1 memories repeat an earlier one" in run.text
    assert fingerprint(seeded_dir) == before  # exploring changes nothing


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"layer": "workng"}, "error: layer 'workng' is not one of: all, short_term"),
        ({"since": "last tuesday"}, "error: since 'last tuesday' is not a time"),
        ({"top": 0}, "error: top 0 must be a whole number from 1 to 1000"),
    ],
)
def test_bad_parameters_are_one_plain_line(
    seeded_dir: Path, tmp_path: Path, parameters: dict[str, object], message: str
) -> None:
    run = run_notebook(NOTEBOOK, tmp_path, data_dir=str(seeded_dir), **parameters)
    assert message in run.text
    assert "Skipped volume" in run.text
    assert _summary(run.text)["error"]
