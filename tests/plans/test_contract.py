"""The plan contract: plan, confirm, digest, backup first, change, verify, record (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from jamey_engine import plans
from jamey_engine.durations import utcnow
from jamey_engine.engine import Engine
from jamey_engine.errors import Conflict, Forbidden, InvalidInput, PhraseMismatch
from jamey_engine.models import Plan
from jamey_engine.oplog import recent_operations
from jamey_engine.plans import Actor, store
from jamey_engine.sizes import format_bytes

from .conftest import actor_of, add_memories

CLI = Actor.cli()


def test_a_prune_plan_is_stored_with_what_it_will_change_and_changes_nothing(db_engine: Engine) -> None:
    add_memories(db_engine)
    planned = plans.plan(db_engine, "prune", {"older_than": "30d", "layer": "working"}, CLI)

    assert planned.status == "planned"
    assert planned.confirm_phrase == "prune 5 memories older than 30d"
    assert planned.summary["total_to_delete"] == 5
    assert planned.summary["backup_first"] is True
    assert [check["ok"] for check in planned.summary["preflight"]] and all(
        check["ok"] for check in planned.summary["preflight"]
    )
    assert len(planned.digest) == 64 and not planned.requires_approval
    assert planned.expires_at - planned.created_at == db_engine.settings.plan_ttl
    assert db_engine.memory.count("working") == 8
    assert plans.get_plan(db_engine.db, planned.id).as_dict() == planned.as_dict()


def test_a_prune_plans_preflight_asks_room_for_the_rewrite_and_a_backup_of_every_layer(
    db_engine: Engine,
) -> None:
    """The preflight takes the pruned layer's size from the plan's dry run and lists the other
    layers' directories for the backup: the room it asks is the pruned layer once for the rewrite
    and every layer once for the backup taken first (one disk here holds both)."""
    add_memories(db_engine, layer="working")
    add_memories(db_engine, old=50, new=50, layer="episodic")
    db_engine.memory.flush()
    sizes = db_engine.memory.sizes()
    planned = plans.plan(db_engine, "prune", {"older_than": "30d", "layer": "working"}, CLI)

    room = [check for check in planned.summary["preflight"] if check["name"].startswith("free disk at")]
    assert len(room) == 1, planned.summary["preflight"]
    needed = sizes.layers["working"].bytes + sizes.total_bytes
    assert sizes.layers["episodic"].bytes > 0 and f"{format_bytes(needed)} needed for" in room[0]["detail"]
    assert room[0]["detail"].endswith("rewriting the pruned layers and the backup taken first")
    opened = next(check for check in planned.summary["preflight"] if check["name"] == "working: index opens")
    assert opened["ok"] and opened["detail"].startswith("8 documents, ")


def test_apply_needs_the_phrase_then_backs_up_prunes_verifies_and_records_one_plan_operation(
    db_engine: Engine,
) -> None:
    add_memories(db_engine)
    planned = plans.plan(db_engine, "prune", {"older_than": "30d", "layer": "working"}, CLI)
    with pytest.raises(PhraseMismatch, match="type exactly 'prune 5 memories older than 30d'"):
        plans.apply(db_engine, planned.id, "prune 4 memories older than 30d", CLI)
    assert db_engine.memory.count("working") == 8
    assert plans.get_plan(db_engine.db, planned.id).status == "planned"

    done = plans.apply(db_engine, planned.id, planned.confirm_phrase, CLI)

    assert db_engine.memory.count("working") == 3
    body = done.as_dict()
    assert body["status"] == "applied" and body["verified"] is True
    assert body["result"]["deleted"] == {"working": 5}
    assert body["backup_id"] in [info.id for info in db_engine.vault.list()]
    kinds = [op["kind"] for op in recent_operations(db_engine.db)][::-1]  # oldest first
    assert kinds == ["backup", "prune", "plan"]
    (record,) = recent_operations(db_engine.db, kind="plan")
    assert record["detail"] == f"plan {planned.id} prune: planned by cli, approved by -, applied by cli"
    with pytest.raises(Conflict, match="applied"):
        plans.apply(db_engine, planned.id, planned.confirm_phrase, CLI)


@pytest.mark.parametrize("meanwhile", ["write", "delete"])
def test_a_plan_applied_after_what_it_would_change_changed_is_refused_as_stale(
    db_engine: Engine, meanwhile: str
) -> None:
    add_memories(db_engine)
    planned = plans.plan(db_engine, "prune", {"older_than": "30d", "layer": "working"}, CLI)
    if meanwhile == "write":  # one more memory old enough to be pruned
        db_engine.memory.store("working", "written after the plan", timestamp=utcnow() - timedelta(days=50))
    else:
        victim = db_engine.memory.search("working", "old", limit=1)[0]
        db_engine.memory.delete("working", victim.id)
    count = db_engine.memory.count("working")

    with pytest.raises(Conflict, match="plan again"):
        plans.apply(db_engine, planned.id, planned.confirm_phrase, CLI)

    assert db_engine.memory.count("working") == count
    assert plans.get_plan(db_engine.db, planned.id).status == "stale"
    assert [op["kind"] for op in recent_operations(db_engine.db)] == []


def test_new_memories_written_between_plan_and_apply_are_kept_and_do_not_make_it_stale(
    db_engine: Engine,
) -> None:
    add_memories(db_engine)
    planned = plans.plan(db_engine, "prune", {"older_than": "30d", "layer": "working"}, CLI)
    fresh = db_engine.memory.store("working", "written after the plan")
    done = plans.apply(db_engine, planned.id, planned.confirm_phrase, CLI)
    assert done.verified and db_engine.memory.get("working", fresh.id).content == "written after the plan"
    assert db_engine.memory.count("working") == 4


def test_bad_input_names_the_field_and_stores_nothing(db_engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="action 'shred' is unknown"):
        plans.plan(db_engine, "shred", {}, CLI)
    with pytest.raises(InvalidInput, match="older_than"):
        plans.plan(db_engine, "prune", {"older_than": "soon"}, CLI)
    with pytest.raises(InvalidInput, match="parameter 'colour' is not a parameter of prune"):
        plans.plan(db_engine, "prune", {"older_than": "1d", "colour": "red"}, CLI)
    with pytest.raises(InvalidInput, match="status 'done' is not a plan status"):
        store.list_plans(db_engine.db, status="done")
    assert store.list_plans(db_engine.db) == []


def test_a_key_without_the_actions_scope_cannot_plan_or_apply(db_engine: Engine) -> None:
    operator = actor_of(db_engine, "operator", ("ops:write",))
    with pytest.raises(Forbidden, match="admin"):
        plans.plan(db_engine, "backup-delete", {"backup_id": "x"}, operator)
    add_memories(db_engine)
    planned = plans.plan(db_engine, "prune", {"older_than": "30d"}, operator)
    reader = actor_of(db_engine, "reader", ("ops:read",))
    with pytest.raises(Forbidden, match="ops:write"):
        plans.apply(db_engine, planned.id, planned.confirm_phrase, reader)
    assert plans.apply(db_engine, planned.id, planned.confirm_phrase, operator).plan.status == "applied"


def test_key_revoke_takes_many_keys_and_key_rotate_shows_the_new_key_once_never_stored(
    db_engine: Engine,
) -> None:
    one = db_engine.keys.create("one", scopes=("memory:read",))
    two = db_engine.keys.create("two", scopes=("memory:read",))
    revoke = plans.plan(db_engine, "key-revoke", {"key_ids": f"{one.id},{two.id}"}, CLI)
    assert revoke.confirm_phrase == "revoke 2 keys: one, two"
    plans.apply(db_engine, revoke.id, revoke.confirm_phrase, CLI)
    assert {db_engine.keys.show(k.id).status for k in (one, two)} == {"revoked"}

    three = db_engine.keys.create("three", scopes=("memory:read",))
    rotate = plans.plan(db_engine, "key-rotate", {"key_id": three.id}, CLI)
    done = plans.apply(db_engine, rotate.id, "rotate key three", CLI)
    new_key = done.as_dict()["key"]
    assert db_engine.keys.verify(new_key).name == "three"
    with db_engine.db.connect() as conn:
        stored = conn.execute(sa.select(Plan.result, Plan.summary)).all()
    assert new_key not in json.dumps([list(row) for row in stored])
    assert plans.get_plan(db_engine.db, rotate.id).result["new_id"] == done.result["new_id"]


def test_backup_delete_plans_names_the_backup_and_removes_it(db_engine: Engine) -> None:
    backup = db_engine.vault.create()
    planned = plans.plan(db_engine, "backup-delete", {"backup_id": backup.id}, CLI)
    assert planned.confirm_phrase == f"delete backup {backup.id}"
    assert planned.summary["size_bytes"] == backup.size_bytes
    plans.apply(db_engine, planned.id, planned.confirm_phrase, CLI)
    assert db_engine.vault.list() == []


@pytest.mark.parametrize("keep_days", [86_812_570, 10**10])  # past year 1; past what a timedelta holds
def test_a_retention_plan_keeping_more_days_than_a_date_holds_keeps_every_backup(
    db_engine: Engine, keep_days: int
) -> None:
    # schemathesis found this one: the cutoff overflowed and the plan answered 500.
    backups = [db_engine.vault.create(), db_engine.vault.create()]
    planned = plans.plan(db_engine, "backup-delete", {"retention": True, "keep_days": keep_days}, CLI)
    plans.apply(db_engine, planned.id, planned.confirm_phrase, CLI)
    assert plans.get_plan(db_engine.db, planned.id).result["deleted_local"] == []
    assert sorted(info.id for info in db_engine.vault.list()) == sorted(b.id for b in backups)


def test_a_restore_plan_names_the_keys_it_keeps_revoked_and_reenable_keys_names_them_to_reenable(
    db_engine: Engine,
) -> None:
    key = db_engine.keys.create("incident", scopes=("memory:read",))
    backup = db_engine.vault.create()
    db_engine.keys.revoke(key.id)
    newcomer = db_engine.keys.create("newcomer", scopes=("memory:read",))

    kept = plans.plan(db_engine, "restore", {"backup_id": backup.id}, CLI)
    again = plans.plan(db_engine, "restore", {"backup_id": backup.id, "reenable_keys": "true"}, CLI)

    assert kept.summary["keys"] == {
        "kept_stopped": [{"id": key.id, "name": "incident"}],
        "reenabled": [],
        "removed": [{"id": newcomer.id, "name": "newcomer"}],
    }
    assert again.summary["keys"]["reenabled"] == [{"id": key.id, "name": "incident"}]
    assert kept.confirm_phrase == f"restore {backup.id}"
    done = plans.apply(db_engine, kept.id, kept.confirm_phrase, CLI)
    assert done.verified and db_engine.keys.show(key.id).status == "revoked"
    assert done.backup_id is not None  # the vault's safety backup
