"""Fixtures of the runbook tests: an engine on a seeded data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from seed_data import seed

from jamey_engine.config import Settings
from jamey_engine.engine import Engine


@pytest.fixture
def seeded(settings: Settings) -> Iterator[Engine]:
    """An engine on a seeded data dir; the runbooks open their own engines on the same dir."""
    engine = Engine(settings)
    seed(engine)
    yield engine
    engine.close()


@pytest.fixture
def seeded_dir(seeded: Engine) -> Path:
    return seeded.settings.data_dir
