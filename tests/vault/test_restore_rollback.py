"""Restores are atomic: when the database commit fails after the memory layers were switched,
the layers are switched back and nothing changed.

The fault is real: a deferred PostgreSQL constraint trigger refuses the restored keys at COMMIT,
which is the one moment after the layer switch where the database can still say no.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import make_settings

from jamey_engine.engine import Engine
from jamey_engine.errors import JameyError
from jamey_engine.oplog import operation_summary
from jamey_engine.vault.catalog import RESTORE_PREVIOUS_PREFIX, RESTORE_STAGING_PREFIX

from .support import change_everything, fill, restored_to, state

REFUSE_AT_COMMIT = [
    """CREATE FUNCTION refuse_keys_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'the test refuses this commit'; END $$""",
    """CREATE CONSTRAINT TRIGGER refuse_keys_at_commit AFTER INSERT ON api_keys
       DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_keys_at_commit()""",
]


@pytest.mark.postgres
def test_a_commit_refused_after_the_layer_switch_puts_the_layers_back(
    tmp_path: Path, postgres_url: str
) -> None:
    data_dir = tmp_path / "data"
    engine = Engine(make_settings(data_dir, JAMEY_DATABASE_URL=postgres_url))
    try:
        fill(engine)
        backed_up = state(engine, tmp_path)
        backup = engine.vault.create()
        change_everything(engine)
        before = state(engine, tmp_path)
        with engine.db.engine.begin() as conn:
            for statement in REFUSE_AT_COMMIT:
                conn.execute(sa.text(statement))

        with pytest.raises(JameyError, match="the memory layers were switched back, nothing changed"):
            engine.vault.restore(backup.id, safety_backup=False)

        assert state(engine, tmp_path) == before, "memories and keys are as they were"
        leftovers = [
            p.name
            for p in data_dir.iterdir()
            if p.name.startswith((RESTORE_STAGING_PREFIX, RESTORE_PREVIOUS_PREFIX))
        ]
        assert leftovers == []
        assert operation_summary(engine.db).counts[("restore", "failure")] == 1

        with engine.db.engine.begin() as conn:  # once the database accepts it, the same backup restores
            conn.execute(sa.text("DROP TRIGGER refuse_keys_at_commit ON api_keys"))
        engine.vault.restore(backup.id, safety_backup=False, reenable_keys=True)
        assert restored_to(state(engine, tmp_path), backed_up)
    finally:
        engine.close()
