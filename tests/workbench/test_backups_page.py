"""The backups page over the real vault: create and verify with progress, restore with the
dry-run diff and a typed confirmation, delete behind a dialog, retention."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from jamey_engine.engine import Engine
from jamey_engine.oplog import recent_operations

from .conftest import open_page, texts

RESTORE = "FormSubmitter:restore-Restore"
RETAIN = "FormSubmitter:retention-Apply retention"


@pytest.fixture
def with_memories(engine: Engine, admin_app: AppTest) -> Engine:
    engine.memory.store_batch("working", [f"note {i}" for i in range(3)])
    engine.close()
    return engine


def create_backup(at: AppTest) -> AppTest:
    at.button(key="backup_create").click().run()
    assert not at.exception, at.exception
    return at


def test_creating_a_backup_lists_it(with_memories: Engine, admin_app: AppTest) -> None:
    open_page(admin_app, "backups")
    assert "No backups yet" in texts(admin_app)
    create_backup(admin_app)
    backups = with_memories.vault.list()
    assert len(backups) == 1
    assert f"Backup {backups[0].id} created" in texts(admin_app)
    table = admin_app.dataframe[0].value
    assert list(table["id"]) == [backups[0].id]
    assert table["documents"].iloc[0] == 3
    assert table["keys"].iloc[0] == 1
    assert table["location"].iloc[0] == "local"  # no JAMEY_BACKUP_REMOTE: never copied off-site


def test_verifying_a_good_backup_says_so(with_memories: Engine, admin_app: AppTest) -> None:
    open_page(admin_app, "backups")
    create_backup(admin_app)
    admin_app.button(key="backup_verify").click().run()
    assert not admin_app.exception, admin_app.exception
    backup_id = with_memories.vault.list()[0].id
    assert f"Backup {backup_id} verified: ok." in texts(admin_app)


def test_verifying_a_damaged_backup_is_an_inline_error_and_the_page_goes_on(
    with_memories: Engine, admin_app: AppTest
) -> None:
    open_page(admin_app, "backups")
    create_backup(admin_app)
    info = with_memories.vault.list()[0]
    data = bytearray(info.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    info.path.write_bytes(bytes(data))
    admin_app.button(key="backup_verify").click().run()
    assert not admin_app.exception, admin_app.exception
    assert len(admin_app.error) == 1
    assert admin_app.number_input(key="keep_last"), "the retention form still renders"


def test_restore_shows_the_diff_and_needs_the_typed_id(with_memories: Engine, admin_app: AppTest) -> None:
    open_page(admin_app, "backups")
    create_backup(admin_app)
    backup_id = with_memories.vault.list()[0].id
    with_memories.memory.store_batch("working", ["after the backup 1", "after the backup 2"])
    with_memories.close()

    admin_app.button(key="backup_plan").click().run()
    assert not admin_app.exception, admin_app.exception
    diff = next(df.value for df in admin_app.dataframe if "what" in df.value.columns).set_index("what")
    assert diff.loc["memory: working", "now"] == 5
    assert diff.loc["memory: working", "after restore"] == 3
    assert diff.loc["memory: working", "change"] == -2

    admin_app.text_input(key="restore_typed").input("not-the-id")
    admin_app.button(key=RESTORE).click().run()
    assert any("not the backup id" in e.value for e in admin_app.error)
    assert with_memories.memory.layer_size("working").documents == 5, "nothing restored"

    admin_app.text_input(key="restore_typed").input(backup_id)
    admin_app.button(key=RESTORE).click().run()
    assert not admin_app.exception, admin_app.exception
    assert f"Restored backup {backup_id}." in texts(admin_app)
    assert with_memories.memory.layer_size("working").documents == 3


def test_deleting_asks_first(with_memories: Engine, admin_app: AppTest) -> None:
    open_page(admin_app, "backups")
    create_backup(admin_app)
    backup_id = with_memories.vault.list()[0].id
    admin_app.button(key="backup_delete").click().run()
    assert f"Delete backup **{backup_id}**?" in texts(admin_app)
    assert len(with_memories.vault.list()) == 1
    admin_app.button(key="delete_yes").click().run()
    assert not admin_app.exception, admin_app.exception
    assert with_memories.vault.list() == []
    assert f"Deleted backup {backup_id}." in texts(admin_app)
    # Both actions are in the operation log, by the signed-in key's name, and shown on the page.
    logged = [
        (op["kind"], op["status"], op["actor"], op["detail"]) for op in recent_operations(with_memories.db)
    ]
    assert logged == [
        ("delete", "success", "ops-admin", backup_id),
        ("backup", "success", "ops-admin", backup_id),
    ]
    log_table = admin_app.dataframe[-1].value
    assert list(log_table["kind"]) == ["delete", "backup"] and set(log_table["actor"]) == {"ops-admin"}


def test_retention_keeps_the_newest(with_memories: Engine, admin_app: AppTest) -> None:
    open_page(admin_app, "backups")
    for _ in range(3):
        create_backup(admin_app)
    newest = with_memories.vault.list()
    assert len(newest) == 3
    admin_app.number_input(key="keep_last").set_value(1)
    admin_app.number_input(key="keep_days").set_value(0)
    admin_app.button(key=RETAIN).click().run()
    assert not admin_app.exception, admin_app.exception
    left = with_memories.vault.list()
    assert len(left) == 1
    assert "Retention deleted 2 backup(s)" in texts(admin_app)


def test_retention_without_a_rule_is_an_inline_error(with_memories: Engine, admin_app: AppTest) -> None:
    open_page(admin_app, "backups")
    create_backup(admin_app)
    admin_app.number_input(key="keep_last").set_value(0)
    admin_app.number_input(key="keep_days").set_value(0)
    admin_app.button(key=RETAIN).click().run()
    assert any("at least one rule" in e.value for e in admin_app.error)
    assert len(with_memories.vault.list()) == 1
