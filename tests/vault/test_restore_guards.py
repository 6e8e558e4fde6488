"""Restore's guards: one restore at a time, and the leftovers of a crashed one are swept first."""

from __future__ import annotations

from pathlib import Path

import pytest

from jamey_engine.engine import Engine
from jamey_engine.errors import Busy
from jamey_engine.oplog import operation_summary
from jamey_engine.vault.catalog import RESTORE_PREVIOUS_PREFIX, RESTORE_STAGING_PREFIX

from .support import change_everything, fill, restored_to, state


def test_a_second_restore_while_one_runs_is_refused_busy_and_changes_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    fill(engine, per_layer=5)
    backed_up = state(engine, tmp_path)
    backup = engine.vault.create()
    change_everything(engine)
    refusals: list[Busy] = []

    def second_restore_meanwhile(done: int, total: int, stage: str) -> None:
        if stage == "switching" and not refusals:  # the first restore holds the lock here
            with pytest.raises(Busy, match="another restore is running") as refused:
                engine.vault.restore(backup.id, safety_backup=False)
            refusals.append(refused.value)

    engine.vault.restore(
        backup.id, progress=second_restore_meanwhile, safety_backup=False, reenable_keys=True
    )
    assert len(refusals) == 1
    assert restored_to(state(engine, tmp_path), backed_up)  # the first restore finished as if alone
    counts = operation_summary(engine.db).counts
    assert (counts[("restore", "success")], counts[("restore", "failure")]) == (1, 1)


def test_leftovers_of_a_crashed_restore_are_removed_before_the_next_one(
    engine: Engine, tmp_path: Path
) -> None:
    fill(engine, per_layer=5)
    backup = engine.vault.create()
    data_dir = engine.settings.data_dir
    leftovers = [
        data_dir / f"{RESTORE_STAGING_PREFIX}crashed-1",
        data_dir / f"{RESTORE_PREVIOUS_PREFIX}crashed-1",
    ]
    for leftover in leftovers:
        (leftover / "memory" / "working").mkdir(parents=True)
        (leftover / "memory" / "working" / "meta.json").write_text("{}")
    seen_at_staging: list[list[str]] = []

    def look_while_extracting(done: int, total: int, stage: str) -> None:
        if not seen_at_staging:
            seen_at_staging.append(sorted(p.name for p in data_dir.iterdir() if p.name.startswith(".")))

    engine.vault.restore(backup.id, progress=look_while_extracting, safety_backup=False)
    assert not any(leftover.exists() for leftover in leftovers)
    assert not any(
        p.name.startswith((RESTORE_STAGING_PREFIX, RESTORE_PREVIOUS_PREFIX)) for p in data_dir.iterdir()
    )
    # Swept before this restore began staging, not only after it.
    assert not any(name in seen_at_staging[0] for name in (p.name for p in leftovers))
