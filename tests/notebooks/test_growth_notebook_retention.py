"""notebooks/memory_growth.ipynb under papermill shows each layer with and without its policy."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import closed_port
from notebook_runner import run_notebook

from jamey_engine.config import Settings
from jamey_engine.engine import Engine

pytestmark = pytest.mark.slow


def _values(encoded: Any) -> list[float]:
    """A plotly trace's values: a plain list, or plotly's base64 typed-array form."""
    if isinstance(encoded, list):
        return [float(v) for v in encoded]
    return [float(v) for v in np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=encoded["dtype"])]


def test_the_notebook_projects_each_layer_with_and_without_its_policy(
    seeded_dir: Path, tmp_path: Path
) -> None:
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(seeded_dir)}))
    try:
        layer = next(s.layer for s in engine.memory.sizes().layers.values() if s.documents)
        engine.retention.set(layer, max_bytes="1MiB", max_age="1d", actor="analyst")
    finally:
        engine.close()
    url = f"http://127.0.0.1:{closed_port()}"
    run = run_notebook("memory_growth.ipynb", tmp_path, data_dir=str(seeded_dir), days=14, prometheus_url=url)
    [sentence] = [line for line in run.text.splitlines() if line.startswith(f"{layer}: up to")]
    assert "without its policy" in sentence and "with it; it never crosses" in sentence, sentence
    [chart] = [
        output["data"]["application/vnd.plotly.v1+json"]
        for output in run.outputs
        if "Projected size without and with"
        in json.dumps(output.get("data", {}).get("application/vnd.plotly.v1+json", {}))
    ]
    lines = {trace["name"]: _values(trace["y"]) for trace in chart["data"]}
    without, with_policy = lines[f"{layer}, without"], lines[f"{layer}, with"]
    assert len(without) == len(with_policy) > 1
    # A one-day age limit holds the layer near one day's growth: below its size today.
    assert max(with_policy) < min(without), (with_policy[:3], without[:3])
    assert all(kept <= grown for kept, grown in zip(with_policy, without, strict=True))
