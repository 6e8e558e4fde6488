"""Fixtures of the notebook tests: seeded data dirs and (shared) a backfilled Prometheus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from seed_data import seed

from jamey_engine.config import Settings
from jamey_engine.engine import Engine


@pytest.fixture
def seeded_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir with old and new memories in two layers and one key (no backups yet)."""
    data_dir = tmp_path / "data"
    engine = Engine(Settings.from_env({"JAMEY_DATA_DIR": str(data_dir)}))
    try:
        seed(engine)
    finally:
        engine.close()
    yield data_dir
