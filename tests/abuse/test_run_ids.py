"""A run id names a folder only when it has the form the runner gives: ``run_dir`` refuses any
other (``..``, slashes) before a path is built, so retention's rmtree never leaves the runs dir."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import make_settings

from jamey_engine.config import Settings
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.errors import InvalidInput
from jamey_engine.models import RunbookRun
from jamey_engine.runbooks import runs

BAD_IDS = ["../../victim", "..", "20261201T063000Z-1a2b3c/../../victim", "/tmp/victim", "", "a" * 40]


@pytest.mark.parametrize("run_id", BAD_IDS)
def test_run_dir_refuses_an_id_not_of_the_runners_form(settings: Settings, run_id: str) -> None:
    with pytest.raises(InvalidInput, match="is not a run id") as refused:
        runs.run_dir(settings, run_id)
    assert repr(run_id)[:20] in refused.value.message
    with pytest.raises(InvalidInput):
        runs.make_run_dir(settings, run_id)
    assert not runs.runs_dir(settings).exists()


def test_retention_never_removes_a_folder_outside_the_runs_dir(data_dir: Path) -> None:
    settings = make_settings(data_dir, JAMEY_RUNBOOK_KEEP="1")
    victim = data_dir / "victim"
    (victim / "keep").mkdir(parents=True)
    engine = Engine(settings)
    try:
        with engine.db.begin() as conn:
            conn.execute(
                sa.insert(RunbookRun).values(
                    id="../../victim", runbook="ok", parameters="{}", actor="mallory", status="succeeded",
                    changes_data=False, created_at=utcnow() - timedelta(days=1), host="h", files_removed=False,
                )
            )  # fmt: skip
        made = []
        for _ in range(2):
            good = runs.create_run(engine.db, runbook="ok", parameters={}, actor="cli", changes_data=False)
            runs.make_run_dir(settings, good.id)
            runs.finish_if_active(engine.db, good.id, "succeeded")
            made.append(good.id)
            time.sleep(0.01)
        assert runs.apply_retention(engine.db, settings) == [made[0]]
        assert (victim / "keep").is_dir()
        assert not runs.run_dir(settings, made[0]).exists() and runs.run_dir(settings, made[1]).exists()
    finally:
        engine.close()
