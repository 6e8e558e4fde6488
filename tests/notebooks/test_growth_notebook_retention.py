"""notebooks/memory_growth.ipynb under papermill shows each layer with and without its policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import closed_port
from notebook_runner import run_notebook

from jamey_engine.config import Settings
from jamey_engine.engine import Engine

pytestmark = pytest.mark.slow


def test_the_notebook_projects_each_layer_with_and_without_its_policy(seeded_dir: Path, tmp_path: Path) -> None:
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(seeded_dir)}))
    try:
        layer = next(s.layer for s in engine.memory.sizes().layers.values() if s.documents)
        engine.retention.set(layer, max_bytes="1MiB", max_age="1d", actor="analyst")
    finally:
        engine.close()
    url = f"http://127.0.0.1:{closed_port()}"
    run = run_notebook("memory_growth.ipynb", tmp_path, data_dir=str(seeded_dir), days=14, prometheus_url=url)
    assert f"{layer}: up to" in run.text
    assert "Projected size without and with each layer's retention policy" in run.text or run.has(
        "application/vnd.plotly.v1+json"
    )
