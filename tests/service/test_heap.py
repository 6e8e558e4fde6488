"""What a service worker tunes for serving while its app runs, and gives back when it stops:
the GIL's switch interval (JAMEY_SWITCH_INTERVAL_MS) and the frozen start-up heap."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import make_settings

from jamey_engine.engine import Engine
from jamey_engine.errors import ConfigError
from jamey_engine.service import create_app


def test_a_worker_serves_with_the_configured_switch_interval_and_gives_pythons_back(tmp_path: Path) -> None:
    before = sys.getswitchinterval()
    assert before == pytest.approx(0.005), "this process runs with Python's default"
    engine = Engine(make_settings(tmp_path, JAMEY_SWITCH_INTERVAL_MS="2"))
    try:
        with TestClient(create_app(engine)) as client:
            assert client.get("/health").status_code == 200
            assert sys.getswitchinterval() == pytest.approx(0.002)
            assert gc.get_freeze_count() > 0, "the start-up heap is frozen while it serves"
        assert sys.getswitchinterval() == pytest.approx(before)
        assert gc.get_freeze_count() == 0
    finally:
        engine.close()


def test_the_default_switch_interval_is_pythons_own(tmp_path: Path) -> None:
    # 5 ms, what CPython starts with: 1 ms no longer shortens the stores' tail and costs CPU.
    assert make_settings(tmp_path).switch_interval_ms == 5.0


@pytest.mark.parametrize(
    ("value", "rule"),
    [("0", "must be a number above zero"), ("fast", "must be a number above zero"), ("250", "at most 100")],
)
def test_a_switch_interval_out_of_range_is_refused_naming_the_variable(
    tmp_path: Path, value: str, rule: str
) -> None:
    with pytest.raises(ConfigError, match=rf"JAMEY_SWITCH_INTERVAL_MS.*{value!r}.*{rule}"):
        make_settings(tmp_path, JAMEY_SWITCH_INTERVAL_MS=value)
