"""KeyManager on SQLite and PostgreSQL: create, list, verify, rotate, revoke, limits, legacy, audit."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from jamey_engine.engine import Engine
from jamey_engine.errors import Conflict, InvalidInput, KeyRejected, NotFound
from jamey_engine.keys import CreatedKey, KeyManager

from .conftest import ONE_HOUR, StatementCounter

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def rejected(keys: KeyManager, plaintext: str | None) -> str:
    with pytest.raises(KeyRejected) as info:
        keys.verify(plaintext)
    return info.value.reason


def test_a_created_key_verifies_with_its_identity_and_scopes(keys: KeyManager, admin_key: CreatedKey) -> None:
    verified = keys.verify(admin_key.key)
    assert verified.id == admin_key.id
    assert verified.name == "alice-admin"
    assert verified.scopes == ("memory:read", "memory:write", "admin")
    assert verified.rate_limit == "60/minute"
    assert not verified.legacy


def test_a_new_key_has_the_default_limit_unless_given_one(keys: KeyManager, reader_key: CreatedKey) -> None:
    assert keys.show(reader_key.id).rate_limit == "10/second"
    plain = keys.create("plain")
    assert plain.info.rate_limit == "60/minute" and not plain.info.custom_rate_limit
    assert plain.info.scopes == ("memory:read",)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"name": ""}, "key name"),
        ({"name": "x" * 101}, "longer than 100"),
        ({"name": "tab\there"}, "control characters"),
        ({"name": "n", "scopes": ("memory:delete",)}, "'memory:delete'"),
        ({"name": "n", "scopes": ()}, "at least one scope"),
        ({"name": "n", "rate_limit": "lots"}, "'lots'"),
        ({"name": "n", "rate_limit": "0/minute"}, "at least one request"),
        ({"name": "n", "expires_in": timedelta(seconds=-5)}, "expiry"),
    ],
)
def test_bad_input_to_create_is_refused_and_writes_nothing(
    keys: KeyManager, kwargs: dict[str, object], needle: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        keys.create(**kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)
    assert keys.count() == 0
    assert keys.audit() == []


def test_names_are_unique_among_active_keys_only(keys: KeyManager) -> None:
    first = keys.create("deploy-bot")
    with pytest.raises(Conflict, match="deploy-bot"):
        keys.create("deploy-bot")
    assert keys.count() == 1
    keys.revoke(first.id)
    again = keys.create("deploy-bot")
    assert again.info.status == "active"


def test_list_and_show_never_carry_the_secret(keys: KeyManager, admin_key: CreatedKey) -> None:
    secret = admin_key.key.split("_")[2]
    listed = keys.list()
    assert [info.id for info in listed] == [admin_key.id]
    assert secret not in repr(listed) and secret not in repr(keys.show(admin_key.id))
    assert admin_key.key not in repr(admin_key)


def test_show_of_an_unknown_id_is_not_found(keys: KeyManager) -> None:
    with pytest.raises(NotFound, match="'nope'"):
        keys.show("nope")


def test_verify_names_why_a_key_is_refused(keys: KeyManager, admin_key: CreatedKey) -> None:
    from jamey_engine.keys import keyformat

    assert rejected(keys, None) == "missing"
    assert rejected(keys, "") == "missing"
    assert rejected(keys, "jmy_garbage") == "malformed"
    assert rejected(keys, "not-a-key-at-all") == "malformed"
    assert rejected(keys, keyformat.new_token()[0]) == "unknown"
    # the right id with another secret: unknown, without saying the id exists
    forged = keyformat.build_token(admin_key.id, keyformat.new_token()[1].secret)
    assert rejected(keys, forged) == "unknown"


def test_malformed_keys_are_rejected_without_a_database_query(
    keys: KeyManager, admin_key: CreatedKey, statements: StatementCounter
) -> None:
    bad_checksum = admin_key.key[:-1] + ("A" if admin_key.key[-1] != "A" else "B")
    for text in ("jmy_", "jmy_AAAAAAAAAAAA_short_AAAAAA", bad_checksum, admin_key.key + "x"):
        for _ in range(50):
            assert rejected(keys, text) == "malformed"
    assert statements.statements == []


def test_non_token_garbage_costs_at_most_one_query_per_cache_period(
    keys: KeyManager, statements: StatementCounter
) -> None:
    for attempt in range(200):
        assert rejected(keys, f"garbage-{attempt}") == "malformed"
    assert len(statements.statements) <= 1


def test_a_cached_verify_does_not_query_the_database(
    keys: KeyManager, admin_key: CreatedKey, statements: StatementCounter
) -> None:
    keys.verify(admin_key.key)
    first = len(statements.statements)
    for _ in range(100):
        keys.verify(admin_key.key)
    assert first == 1
    assert len(statements.statements) == first


def test_a_revoked_key_is_refused_at_once_in_the_same_process(
    keys: KeyManager, admin_key: CreatedKey
) -> None:
    keys.verify(admin_key.key)  # now cached
    info = keys.revoke(admin_key.id)
    assert info.status == "revoked" and info.revoked_at is not None
    assert rejected(keys, admin_key.key) == "revoked"


def test_revoked_persona_is_refused(keys: KeyManager, revoked_key: CreatedKey) -> None:
    assert rejected(keys, revoked_key.key) == "revoked"
    with pytest.raises(Conflict, match="already revoked"):
        keys.revoke(revoked_key.id)


def test_an_expired_key_is_refused_and_its_expiry_audited_once(keys: KeyManager) -> None:
    with time_machine.travel(START, tick=False) as clock:
        created = keys.create("temp", expires_in=ONE_HOUR)
        assert keys.verify(created.key).id == created.id  # cached from here on
        clock.move_to(START + timedelta(minutes=59, seconds=59))
        assert keys.verify(created.key).id == created.id
        clock.move_to(START + ONE_HOUR)
        assert rejected(keys, created.key) == "expired"
        assert rejected(keys, created.key) == "expired"
        assert keys.show(created.id).status == "expired"
        keys.list()
        expired_events = [e for e in keys.audit() if e["event"] == "expired"]
        assert len(expired_events) == 1
        assert expired_events[0]["actor"] == "system" and expired_events[0]["key_id"] == created.id


def test_a_key_expiring_within_seven_days_says_so(keys: KeyManager) -> None:
    with time_machine.travel(START, tick=False) as clock:
        created = keys.create("soon", expires_in=timedelta(days=10))
        assert keys.show(created.id).status == "active"
        clock.move_to(START + timedelta(days=3, seconds=1))
        assert keys.show(created.id).status == "expiring"
        assert keys.verify(created.key).id == created.id


def test_rotation_without_grace_stops_the_old_key_at_once(keys: KeyManager) -> None:
    old = keys.create("svc", scopes=("memory:write",), rate_limit="7/second", expires_in=timedelta(days=30))
    keys.verify(old.key)
    new = keys.rotate(old.id)
    assert new.id != old.id
    assert (new.info.name, new.info.scopes, new.info.rate_limit) == ("svc", ("memory:write",), "7/second")
    assert new.info.expires_at == old.info.expires_at
    assert new.info.rotated_from == old.id
    assert keys.show(old.id).rotated_to == new.id
    assert rejected(keys, old.key) == "revoked"
    assert keys.verify(new.key).id == new.id
    events = [(e["event"], e["key_id"]) for e in keys.audit()]
    assert ("rotated", old.id) in events and ("created", new.id) in events


def test_the_grace_period_ends_on_time(keys: KeyManager) -> None:
    with time_machine.travel(START, tick=False) as clock:
        old = keys.create("svc")
        new = keys.rotate(old.id, grace=ONE_HOUR)
        assert keys.show(old.id).status == "rotating"
        assert keys.verify(old.key).id == old.id  # cached with the grace end
        assert keys.verify(new.key).id == new.id
        clock.move_to(START + ONE_HOUR - timedelta(microseconds=1))
        assert keys.verify(old.key).id == old.id
        clock.move_to(START + ONE_HOUR)
        assert rejected(keys, old.key) == "revoked"
        info = keys.show(old.id)
        assert info.status == "revoked" and info.revoked_at == START + ONE_HOUR
        assert keys.verify(new.key).id == new.id


def test_the_name_of_a_rotating_key_is_free_for_its_successor_only(keys: KeyManager) -> None:
    old = keys.create("svc")
    keys.rotate(old.id, grace=ONE_HOUR)
    with pytest.raises(Conflict):
        keys.create("svc")


@pytest.mark.parametrize("status", ["revoked", "rotating"])
def test_only_an_active_key_can_be_rotated(keys: KeyManager, status: str) -> None:
    created = keys.create("svc")
    if status == "revoked":
        keys.revoke(created.id)
    else:
        keys.rotate(created.id, grace=ONE_HOUR)
    before = keys.count()
    with pytest.raises(Conflict, match=status):
        keys.rotate(created.id)
    assert keys.count() == before


def test_rotate_refuses_a_bad_grace_and_changes_nothing(keys: KeyManager, admin_key: CreatedKey) -> None:
    with pytest.raises(InvalidInput, match="grace"):
        keys.rotate(admin_key.id, grace=timedelta(0))
    assert keys.count() == 1 and keys.show(admin_key.id).status == "active"
    with pytest.raises(NotFound):
        keys.rotate("unknownid123")


def test_set_limit_changes_the_verified_limit_and_is_audited(
    keys: KeyManager, reader_key: CreatedKey
) -> None:
    keys.verify(reader_key.key)
    info = keys.set_limit(reader_key.id, "100/minute", actor="alice-admin")
    assert info.rate_limit == "100/minute"
    assert keys.verify(reader_key.key).rate_limit == "100/minute"
    event = keys.audit(limit=1)[0]
    assert event["event"] == "rate_limit_changed"
    assert event["actor"] == "alice-admin"
    assert event["detail"] == "10/second -> 100/minute"


@pytest.mark.parametrize("limit", ["fast", "", "10 per fortnight", "5/minute;10/hour", "-1/minute"])
def test_a_bad_limit_is_refused_and_nothing_changes(
    keys: KeyManager, reader_key: CreatedKey, limit: str
) -> None:
    before = keys.audit()
    with pytest.raises(InvalidInput, match="rate limit"):
        keys.set_limit(reader_key.id, limit)
    assert keys.show(reader_key.id).rate_limit == "10/second"
    assert keys.audit() == before


def test_set_limit_on_unknown_or_revoked_keys_is_refused(keys: KeyManager, revoked_key: CreatedKey) -> None:
    with pytest.raises(NotFound):
        keys.set_limit("unknownid123", "5/minute")
    with pytest.raises(Conflict):
        keys.set_limit(revoked_key.id, "5/minute")


def test_every_change_is_audited_with_its_actor(keys: KeyManager) -> None:
    created = keys.create("audited", actor="alice")
    keys.set_limit(created.id, "1/second", actor="bob")
    keys.revoke(created.id, actor="carol")
    trail = keys.audit()
    assert [(e["event"], e["actor"]) for e in trail] == [
        ("revoked", "carol"),
        ("rate_limit_changed", "bob"),
        ("created", "alice"),
    ]
    assert all(e["key_name"] == "audited" and e["at"].tzinfo is not None for e in trail)
    assert keys.audit(limit=1, key_id=created.id)[0]["event"] == "revoked"


def test_last_used_times_are_written_in_batches_not_per_request(
    keys: KeyManager, admin_key: CreatedKey, statements: StatementCounter
) -> None:
    for _ in range(100):
        keys.verify(admin_key.key)
    writes = [s for s in statements.statements if s.lstrip().upper().startswith("UPDATE")]
    assert writes == []
    assert keys.show(admin_key.id).last_used_at is not None  # visible in this process already
    keys.flush_last_used()
    writes = [s for s in statements.statements if s.lstrip().upper().startswith("UPDATE")]
    assert len(writes) == 1
    other = KeyManager(keys.db, keys.settings)
    assert other.show(admin_key.id).last_used_at is not None


def test_closing_the_database_flushes_last_used_times(db_engine: Engine) -> None:
    created = db_engine.keys.create("flush-on-close")
    db_engine.keys.verify(created.key)
    settings = db_engine.settings
    db_engine.close()
    fresh = Engine(settings)
    try:
        assert fresh.keys.show(created.id).last_used_at is not None
    finally:
        fresh.close()


def test_a_pepper_makes_hashes_depend_on_the_server_secret(db_engine: Engine) -> None:
    peppered = KeyManager(db_engine.db, db_engine.settings.with_overrides(key_pepper="pepper-one"))
    created = peppered.create("peppered")
    assert peppered.verify(created.key).id == created.id
    assert peppered.hash_key(created.key) != KeyManager(db_engine.db, db_engine.settings).hash_key(
        created.key
    )
    other_pepper = KeyManager(db_engine.db, db_engine.settings.with_overrides(key_pepper="pepper-two"))
    assert rejected(other_pepper, created.key) == "unknown"
    assert rejected(KeyManager(db_engine.db, db_engine.settings), created.key) == "unknown"


def test_the_legacy_api_key_still_works_with_a_warning_once(
    db_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    import jamey_engine.keys.verify as verify_module

    verify_module._legacy_warned = False
    keys = KeyManager(db_engine.db, db_engine.settings.with_overrides(legacy_api_key="old-shared-secret"))
    with caplog.at_level(logging.WARNING, logger="jamey_engine.keys"):
        for _ in range(3):
            verified = keys.verify("old-shared-secret")
            keys.forget_cache()
    assert verified.legacy and verified.id == "legacy"
    assert verified.scopes == ("memory:read", "memory:write")
    assert verified.rate_limit == keys.settings.default_rate_limit
    warnings = [r for r in caplog.records if "deprecated API_KEY" in r.getMessage()]
    assert len(warnings) == 1
    assert "old-shared-secret" not in caplog.text
    assert rejected(keys, "old-shared-secreT") == "malformed"


def test_importing_the_legacy_key_puts_the_database_in_charge(db_engine: Engine) -> None:
    settings = db_engine.settings.with_overrides(legacy_api_key="old-shared-secret")
    keys = KeyManager(db_engine.db, settings)
    info = keys.import_legacy(actor="ops")
    assert info.legacy and info.scopes == ("memory:read", "memory:write") and info.status == "active"
    assert keys.audit(limit=1)[0]["event"] == "legacy_imported"
    assert keys.verify("old-shared-secret").id == info.id
    with pytest.raises(Conflict, match="already imported"):
        keys.import_legacy()
    # the variable may now go: the database row alone verifies it
    without_variable = KeyManager(db_engine.db, db_engine.settings)
    assert without_variable.verify("old-shared-secret").id == info.id
    keys.revoke(info.id)
    assert rejected(keys, "old-shared-secret") == "revoked"


def test_import_legacy_without_api_key_is_invalid_input(keys: KeyManager) -> None:
    with pytest.raises(InvalidInput, match="API_KEY is not set"):
        keys.import_legacy()
    assert keys.count() == 0
