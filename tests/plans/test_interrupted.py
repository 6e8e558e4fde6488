"""An apply whose process is SIGKILLed mid-apply: the next reader marks its plan ``failed``
(SQLite and PostgreSQL, a real child process), and the data is whole on one side.

(A restore killed at each of its steps, whose plan ends on the side the restore ended on, is in
tests/vault/test_restore_killed.py.)"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

from helpers import kill_at_marker

from jamey_engine import plans
from jamey_engine.config import Settings
from jamey_engine.engine import Engine
from jamey_engine.oplog import recent_operations
from jamey_engine.plans import Actor, recovery, store
from jamey_engine.plans.applying import claim

from .conftest import add_memories

# Applies the plan named in argv; stops for good at the first progress report after the plan's
# "applying" (the engine is rewriting the layer, past the plan's checks and its backup) for the
# test to kill it there.
APPLY_AND_STOP = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from jamey_engine.config import Settings
    from jamey_engine.engine import Engine
    from jamey_engine.plans import Actor, apply

    plan_id, phrase, marker = sys.argv[1:4]
    changing = []

    def progress(done, total, stage):
        if changing:
            Path(marker).write_text(stage)
            time.sleep(600)  # the test kills us here
        if stage == "applying":
            changing.append(stage)

    engine = Engine(Settings.from_env())
    apply(engine, plan_id, phrase, Actor.cli(), progress)
    print("finished")
    """
)


def _apply_and_kill(settings: Settings, plan_id: str, phrase: str, tmp: Path) -> int:
    marker = tmp / "reached"
    env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(settings.data_dir),
        "JAMEY_DATABASE_URL": settings.database_url,
    }
    return kill_at_marker(
        [sys.executable, "-c", APPLY_AND_STOP, plan_id, phrase, str(marker)], env, marker, "the prune"
    )


def test_a_prune_apply_killed_mid_apply_is_failed_by_the_next_reader_and_the_data_is_whole(
    db_settings: Settings, tmp_path: Path
) -> None:
    engine = Engine(db_settings)
    try:
        add_memories(engine, old=5, new=3)
        engine.memory.flush_layer("working")
        planned = plans.plan(engine, "prune", {"older_than": "30d", "layer": "working"}, Actor.cli())
    finally:
        engine.close()

    pid = _apply_and_kill(db_settings, planned.id, planned.confirm_phrase, tmp_path)

    again = Engine(db_settings)  # the next start
    try:
        assert store.get(again.db, planned.id).status == "applying", "nothing settles it but a reader"
        settled = recovery.get(again, planned.id)
        assert settled.status == "failed"
        assert settled.error == f"apply interrupted: process {pid} died"
        assert settled.finished_at is not None and settled.progress is None
        events = store.events(again.db, planned.id)
        assert (events[-1]["event"], events[-1]["actor"]) == ("failed", "recovery")
        [record] = [op for op in recent_operations(again.db, 20) if op["kind"] == "plan"]
        assert record["status"] == "failure"
        assert f"apply interrupted: process {pid} died" in (record["detail"] or "")
        assert recovery.reap(again) == [], "settled once"
        # The data is whole on one side: the prune's switch is atomic, so all five old memories
        # are there or none is, and the three new ones always are.
        assert again.memory.count("working") in (3, 8)
        # Nothing is left locked: the same change plans and applies now.
        fresh = plans.plan(again, "prune", {"older_than": "30d", "layer": "working"}, Actor.cli())
        done = plans.apply(again, fresh.id, fresh.confirm_phrase, Actor.cli())
        assert done.plan.status == "applied" and again.memory.count("working") == 3
    finally:
        again.close()


def test_an_apply_whose_process_lives_stays_applying(db_engine: Engine) -> None:
    add_memories(db_engine)
    planned = plans.plan(db_engine, "prune", {"older_than": "30d", "layer": "working"}, Actor.cli())
    claimed = claim(db_engine, planned.id, planned.confirm_phrase, Actor.cli())
    assert claimed.status == "applying"
    assert recovery.reap(db_engine) == []  # this process is the applier, and it is alive
    assert recovery.get(db_engine, planned.id).status == "applying"
