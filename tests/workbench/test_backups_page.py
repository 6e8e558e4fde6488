"""The backups page over the real vault: create and verify with progress, restore with the
dry-run diff and a typed confirmation, delete behind a dialog, retention."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from jamey_engine.engine import Engine
from jamey_engine.oplog import recent_operations
from jamey_engine.plans.store import list_plans

from .conftest import open_page, texts

RESTORE = "FormSubmitter:plan_apply_backups_restore-Apply"
RETAIN = "FormSubmitter:retention-Plan the retention"
RETAIN_APPLY = "FormSubmitter:plan_apply_backups_retention-Apply"


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


def test_restore_is_planned_with_its_diff_and_applied_with_its_phrase(
    with_memories: Engine, admin_app: AppTest
) -> None:
    open_page(admin_app, "backups")
    create_backup(admin_app)
    backup_id = with_memories.vault.list()[0].id
    with_memories.memory.store_batch("working", ["after the backup 1", "after the backup 2"])
    with_memories.close()

    admin_app.button(key="backup_plan").click().run()
    assert not admin_app.exception, admin_app.exception
    (plan,) = list_plans(with_memories.db)
    assert (plan.action, plan.parameters["backup_id"], plan.confirm_phrase) == (
        "restore",
        backup_id,
        f"restore {backup_id}",
    )
    diff = next(
        df.value for df in admin_app.dataframe if "backup" in df.value.columns and "layer" in df.value.columns
    )
    diff = diff.set_index("layer")
    assert diff.loc["working", "now"] == 5
    assert diff.loc["working", "backup"] == 3
    assert diff.loc["working", "change"] == -2

    admin_app.text_input(key="plan_phrase_backups_restore").input("not-the-id")
    admin_app.button(key=RESTORE).click().run()
    assert any("does not match" in e.value for e in admin_app.error), [e.value for e in admin_app.error]
    assert with_memories.memory.layer_size("working").documents == 5, "nothing restored"

    admin_app.text_input(key="plan_phrase_backups_restore").input(plan.confirm_phrase)
    admin_app.button(key=RESTORE).click().run()
    assert not admin_app.exception, admin_app.exception
    assert f"Plan {plan.id} applied (restore" in texts(admin_app)
    assert with_memories.memory.layer_size("working").documents == 3


def test_deleting_is_planned_first(with_memories: Engine, admin_app: AppTest) -> None:
    open_page(admin_app, "backups")
    create_backup(admin_app)
    admin_app.button(key="backup_delete").click().run()
    assert not admin_app.exception, admin_app.exception
    (plan,) = list_plans(with_memories.db)
    assert plan.action == "backup-delete" and f"**Plan {plan.id}**" in texts(admin_app)
    assert len(with_memories.vault.list()) == 1
    admin_app.text_input(key="plan_phrase_backups_delete").input(plan.confirm_phrase)
    admin_app.button(key="FormSubmitter:plan_apply_backups_delete-Apply").click().run()
    assert not admin_app.exception, admin_app.exception
    assert with_memories.vault.list() == []
    assert f"Plan {plan.id} applied (backup-delete" in texts(admin_app)
    # Both actions are in the operation log, by the signed-in key's name, and shown on the page.
    logged = [(op["kind"], op["status"], op["actor"]) for op in recent_operations(with_memories.db)]
    assert ("delete", "success", "ops-admin") in logged and ("backup", "success", "ops-admin") in logged
    log_table = admin_app.dataframe[-1].value
    assert "delete" in list(log_table["kind"]) and set(log_table["actor"]) == {"ops-admin"}


def test_the_retention_plan_says_why_each_backup_is_kept(with_memories: Engine, admin_app: AppTest) -> None:
    open_page(admin_app, "backups")
    create_backup(admin_app)
    create_backup(admin_app)
    newest, older = [b.id for b in with_memories.vault.list()]
    table = next(df.value for df in admin_app.dataframe if "why" in df.value.columns).set_index("id")
    assert table.loc[newest, "kept"] == "yes"
    assert table.loc[older, "why"]  # a reason, or "no rule keeps it"


def test_retention_keeps_the_newest_through_a_plan(with_memories: Engine, admin_app: AppTest) -> None:
    open_page(admin_app, "backups")
    for _ in range(3):
        create_backup(admin_app)
    backups = [b.id for b in with_memories.vault.list()]
    assert len(backups) == 3
    admin_app.toggle(key="retention_rules").set_value(True)
    admin_app.number_input(key="keep_last").set_value(1)
    admin_app.number_input(key="keep_days").set_value(0)
    admin_app.button(key=RETAIN).click().run()
    assert not admin_app.exception, admin_app.exception
    # Planned, not applied: the plan names what goes, and nothing is deleted yet.
    (plan,) = [p for p in list_plans(with_memories.db) if p.action == "backup-delete"]
    assert plan.parameters["retention"] is True and plan.parameters["keep_last"] == 1
    assert len(with_memories.vault.list()) == 3
    admin_app.text_input(key="plan_phrase_backups_retention").input(plan.confirm_phrase)
    admin_app.button(key=RETAIN_APPLY).click().run()
    assert not admin_app.exception, admin_app.exception
    assert [b.id for b in with_memories.vault.list()] == backups[:1]
    assert f"Plan {plan.id} applied (backup-delete" in texts(admin_app)


def test_retention_without_a_rule_is_an_inline_error(with_memories: Engine, admin_app: AppTest) -> None:
    open_page(admin_app, "backups")
    create_backup(admin_app)
    admin_app.toggle(key="retention_rules").set_value(True)
    admin_app.number_input(key="keep_last").set_value(0)
    admin_app.number_input(key="keep_days").set_value(0)
    admin_app.button(key=RETAIN).click().run()
    assert any("at least one rule" in e.value for e in admin_app.error)
    assert len(with_memories.vault.list()) == 1
    assert [p for p in list_plans(with_memories.db) if p.action == "backup-delete"] == []
