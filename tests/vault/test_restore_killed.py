"""A restore apply killed with SIGKILL at each step: the next start finds one consistent state.

The restore runs through the plan contract in a real child process, which stops at a named
step (``restore_journal.step_hook``) so the SIGKILL lands there deterministically. Before the
commit (the point of no return) the next start rolls back: memories and keys as before. From
the commit on it rolls forward: memories and keys from the backup. Never a mix, nothing lost.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import kill_at_marker

from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.memory import LAYERS
from jamey_engine.oplog import operation_summary
from jamey_engine.plans import recovery, store
from jamey_engine.vault.restore_journal import journal_path, read_journal

from .support import change_everything, fill, restored_to, state

APPLY_AND_STOP = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine
    from jamey_engine.plans import Actor, apply, plan
    from jamey_engine.vault import restore_journal

    stop_at, marker, backup_id = sys.argv[1:4]

    def hook(name):
        if name == stop_at:
            Path(marker).write_text(name)
            time.sleep(600)  # the test kills us here

    restore_journal.step_hook = hook
    engine = Engine(Settings.from_env())
    actor = Actor.cli()
    record = plan(engine, "restore", {"backup_id": backup_id, "reenable_keys": True}, actor)
    apply(engine, record.id, record.confirm_phrase, actor)
    print("finished")
    """
)

# (step the kill lands on, the side the next start must find)
STEPS = [
    ("safety-backup", "before"),  # nothing switched yet
    ("generations-prepared", "before"),  # new generations and the journal on disk
    ("rows-loaded", "before"),  # rows loaded in the open transaction
    ("layers-switched", "before"),  # CURRENT switched, the transaction not committed
    ("committed", "backup"),  # just past the point of no return
    ("verified", "backup"),  # the way back still on disk
]


def _kill_at(settings: Settings, step: str, backup_id: str, tmp: Path) -> int:
    """Run the restore plan's apply in a child process, SIGKILL it at ``step``; its pid."""
    marker = tmp / f"reached-{step}"
    env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(settings.data_dir),
        "JAMEY_DATABASE_URL": settings.database_url,
    }
    return kill_at_marker(
        [sys.executable, "-c", APPLY_AND_STOP, step, str(marker), backup_id], env, marker, f"step {step}"
    )


def _generation_dirs(memory_dir: Path, layer: str) -> set[str]:
    return {p.name for p in (memory_dir / layer).iterdir() if p.is_dir() and p.name.startswith("g")}


@pytest.mark.parametrize(("step", "side"), STEPS, ids=[step for step, _ in STEPS])
def test_a_restore_killed_at_each_step_comes_back_whole_on_one_side(
    db_settings: Settings, tmp_path: Path, step: str, side: str
) -> None:
    engine = Engine(db_settings)
    try:
        fill(engine)
        backed_up = state(engine, tmp_path)
        backup = engine.vault.create()
        change_everything(engine)
        before = state(engine, tmp_path)
    finally:
        engine.close()

    pid = _kill_at(db_settings, step, backup.id, tmp_path)
    memory_dir = db_settings.memory_dir
    journal = read_journal(memory_dir)
    if step != "safety-backup":
        assert journal is not None, "the journal is on disk while the restore is in flight"
        # Both sides' generations are still there: the way back and the way forward.
        for layer in LAYERS:
            names = _generation_dirs(memory_dir, layer)
            assert {journal.previous[layer], journal.staged[layer]} <= names

    if journal is not None:  # doctor names it and changes nothing
        from jamey_engine import doctor

        assert "interrupted restore" in {f.check for f in doctor.run(db_settings).findings}
        assert journal_path(memory_dir).exists()

    again = Engine(db_settings)  # the next start
    try:
        now = state(again, tmp_path)
        assert not journal_path(memory_dir).exists(), "the next start finished the restore"
        if side == "before":
            assert now == before, "rolled back: memories and keys both as before the restore"
            assert operation_summary(again.db).counts[("restore", "success")] == 0
        else:
            assert restored_to(now, backed_up), "rolled forward: memories and keys both from the backup"
            assert operation_summary(again.db).counts[("restore", "success")] == 1
        mapping = again.memory.generations.read()
        for layer in LAYERS:  # one generation per layer left: the one CURRENT names
            assert _generation_dirs(memory_dir, layer) == {mapping[layer]}
        leftovers = [p.name for p in db_settings.data_dir.iterdir() if p.name.startswith(".restore-")]
        assert leftovers == []
        # Nothing lost: the restored backup still verifies, and the state before the restore
        # is in the safety backup taken before the kill.
        again.vault.verify(backup.id)
        safety = [info for info in again.vault.list() if info.label.startswith("safety backup")]
        assert len(safety) == 1
        # The plan says which side the restore ended on, once a reader settles it.
        [stored] = [r for r in store.list_plans(again.db) if r.action == "restore"]
        assert stored.status == "applying", "the killed apply left its plan applying"
        [plan] = [r for r in recovery.list_plans(again) if r.action == "restore"]
        if side == "before":
            assert plan.status == "failed"
            assert plan.error == (
                f"apply interrupted: process {pid} died before the restore committed; "
                "the restore was rolled back, nothing changed"
            )
        else:
            assert plan.status == "applied" and plan.error is None
            assert plan.result is not None and plan.result["recovered"] == "forward"
            assert plan.result["note"].startswith(f"apply interrupted: process {pid} died after the restore")
        assert plan.finished_at is not None and plan.progress is None
        assert [e["event"] for e in store.events(again.db, plan.id)][-1] == plan.status
    finally:
        again.close()


def test_after_a_roll_back_the_same_backup_restores(db_settings: Settings, tmp_path: Path) -> None:
    engine = Engine(db_settings)
    try:
        fill(engine)
        backed_up = state(engine, tmp_path)
        backup = engine.vault.create()
        change_everything(engine)
    finally:
        engine.close()
    _kill_at(db_settings, "layers-switched", backup.id, tmp_path)
    again = Engine(db_settings)
    try:
        # The restore itself finishes a killed one first (here: the next start did already).
        again.vault.restore(backup.id, safety_backup=False, reenable_keys=True)
        assert restored_to(state(again, tmp_path), backed_up)
        assert not journal_path(db_settings.memory_dir).exists()
    finally:
        again.close()


def test_a_cancel_waits_only_past_the_point_of_no_return(tmp_path: Path) -> None:
    from jamey_engine.vault.restore_journal import (
        Journal,
        past_point_of_no_return,
        remove_journal,
        write_journal,
    )

    memory_dir = tmp_path / "memory"
    memory_dir.mkdir()
    assert not past_point_of_no_return(memory_dir), "no restore in flight"
    journal = Journal("b", {}, {}, str(tmp_path / "way-back"), "marker")  # this (live) process
    write_journal(memory_dir, journal)
    assert not past_point_of_no_return(memory_dir), "before the commit a cancel may kill"
    for phase in ("committing", "committed"):
        journal.phase = phase
        write_journal(memory_dir, journal)
        assert past_point_of_no_return(memory_dir), f"{phase}: a cancel waits"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    journal.pid = dead.pid
    write_journal(memory_dir, journal)
    assert not past_point_of_no_return(memory_dir), "a dead restore's journal is the next start's to finish"
    remove_journal(memory_dir)
    assert not past_point_of_no_return(memory_dir)


def test_a_restore_that_does_not_verify_after_its_commit_puts_the_way_back_in_place(
    tmp_path: Path,
) -> None:
    from helpers import make_settings

    from jamey_engine.errors import JameyError
    from jamey_engine.vault import restore_journal

    # Without the write-ahead log a store commits into the index at once, so the damage below
    # lands in the backup's generation only.
    engine = Engine(make_settings(tmp_path / "data", JAMEY_WAL="off"))
    try:
        fill(engine)
        backup = engine.vault.create()
        change_everything(engine)
        before = state(engine, tmp_path)

        def damage(name: str) -> None:  # the restored state stops matching its manifest
            if name == "committed":
                engine.memory.store("working", "a memory the backup does not hold")

        restore_journal.step_hook = damage
        try:
            with pytest.raises(JameyError, match=r"did not verify.*previous state was put back"):
                engine.vault.restore(backup.id, safety_backup=False, reenable_keys=True)
        finally:
            restore_journal.step_hook = None
        assert state(engine, tmp_path) == before, "memories and keys as before the restore"
        assert operation_summary(engine.db).counts[("restore", "success")] == 0
        assert operation_summary(engine.db).counts[("restore", "failure")] == 1
        assert not journal_path(engine.settings.memory_dir).exists()
    finally:
        engine.close()
