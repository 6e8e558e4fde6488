"""Unknown-but-well-formed keys: a flood of them costs a bounded number of database queries
and never pushes valid keys out of the verification cache (the negative cache, bounded apart
from the positive one); a key created afterwards works at once in this process and within
JAMEY_KEY_NEGATIVE_CACHE_SECONDS in another.

Seen failing on the old code: 1,000 requests cycling 50 unknown keys took 1,000 queries (one
each); 1,000 distinct random unknown keys took 1,000; with a positive cache of 100 entries the
valid key was pushed out by the flood and asked the database again; a key created in this
process after its plaintext had been presented was refused for key_cache_seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import sleep_until

from jamey_engine.db import Database
from jamey_engine.engine import Engine
from jamey_engine.errors import KeyRejected
from jamey_engine.keys import KeyManager, keyformat, verify
from jamey_engine.keys import manager as manager_module


@contextmanager
def counted_queries(db: Database) -> Iterator[list[str]]:
    """Every statement ``db`` executes while the block runs (a SQLAlchemy event listener)."""
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)


def random_unknown_keys(count: int) -> list[str]:
    return [keyformat.new_token()[0] for _ in range(count)]


def refused(keys: KeyManager, plaintext: str) -> str:
    with pytest.raises(KeyRejected) as rejected:
        keys.verify(plaintext)
    return rejected.value.reason


def test_repeated_unknown_keys_cost_one_query_each(db_engine: Engine) -> None:
    settings = db_engine.settings.with_overrides(key_negative_cache_seconds=600.0)
    keys = KeyManager(db_engine.db, settings)
    unknown = random_unknown_keys(50)
    with counted_queries(db_engine.db) as statements:
        reasons = {refused(keys, unknown[n % 50]) for n in range(1000)}
    assert reasons == {"unknown"}
    assert len(statements) <= 50  # at most once each (fewer once the flood guard answers)


def test_a_flood_of_random_unknown_keys_costs_a_bounded_number_of_queries(db_engine: Engine) -> None:
    keys = KeyManager(db_engine.db, db_engine.settings)
    valid = keys.create("real", scopes=("memory:read",))
    flood = random_unknown_keys(1000)
    started = time.monotonic()
    with counted_queries(db_engine.db) as statements:
        reasons = {refused(keys, plaintext) for plaintext in flood}
    elapsed = time.monotonic() - started
    assert reasons == {"unknown"}
    # At most UNKNOWN_LOOKUPS_PER_SECOND lookups of unknown ids per second, plus one reload of
    # the id list per key_negative_cache_seconds: a bound derived from how long the flood
    # took, so a slow machine can only raise it (and the old code's 1,000 stays far above).
    per_second = verify.UNKNOWN_LOOKUPS_PER_SECOND
    bound = per_second * (int(elapsed) + 2) + int(elapsed / keys.verifier.negative_seconds) + 2
    assert len(statements) <= bound < 1000, (len(statements), elapsed)
    assert keys.verify(valid.key).id == valid.id  # a real key still gets in during the flood


def test_valid_keys_stay_cached_while_unknown_keys_flood(
    db_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify, "CACHE_MAX_ENTRIES", 100)  # a small positive cache, easy to flood
    settings = db_engine.settings.with_overrides(key_cache_seconds=600.0)
    keys = KeyManager(db_engine.db, settings)
    valid = [keys.create(f"real-{n}", scopes=("memory:read",)) for n in range(5)]
    for created in valid:
        keys.verify(created.key)
    with counted_queries(db_engine.db) as statements:
        for plaintext in random_unknown_keys(1000):
            refused(keys, plaintext)
            assert keys.verify_cached(valid[0].key) is not None  # answered without the database
        flood_queries = len(statements)
        for created in valid:
            assert keys.verify_cached(created.key) is not None
            assert keys.verify(created.key).id == created.id
    assert len(statements) == flood_queries  # the valid keys cost nothing after the flood
    assert len(keys.verifier._unknown) <= verify.NEGATIVE_CACHE_MAX_ENTRIES


def test_the_negative_cache_is_a_bounded_lru(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "NEGATIVE_CACHE_MAX_ENTRIES", 10)
    keys = KeyManager(engine.db, engine.settings.with_overrides(key_negative_cache_seconds=600.0))
    first, *others = random_unknown_keys(12)
    refused(keys, first)
    for plaintext in others[:9]:
        refused(keys, plaintext)
    refused(keys, first)  # used again: now the most recent
    with counted_queries(engine.db) as statements:
        refused(keys, others[9])  # pushes out the least recently used (others[0]), not first
        refused(keys, first)
    assert len(statements) == 1
    assert len(keys.verifier._unknown) <= 10


def _presented_then_created(monkeypatch: pytest.MonkeyPatch, creator: KeyManager, name: str) -> str:
    """Create a key through ``creator`` whose plaintext is chosen here (so it can be presented
    before it exists); return the plaintext."""
    plaintext, token = keyformat.new_token()
    monkeypatch.setattr(manager_module.keyformat, "new_token", lambda: (plaintext, token))
    return plaintext


def test_a_key_created_in_this_process_works_at_once(
    db_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = db_engine.settings.with_overrides(key_negative_cache_seconds=600.0)
    keys = KeyManager(db_engine.db, settings)
    for plaintext in random_unknown_keys(3 * verify.UNKNOWN_LOOKUPS_PER_SECOND):
        refused(keys, plaintext)  # flooded: ids are now checked against the id list
    plaintext = _presented_then_created(monkeypatch, keys, "later")
    assert refused(keys, plaintext) == "unknown"  # cached as unknown for ten minutes...
    created = keys.create("later", scopes=("memory:read",))
    monkeypatch.undo()
    assert keys.verify(plaintext).id == created.id  # ...and yet it works at once
    assert keys.verify_cached(plaintext) is not None


def test_a_key_created_in_another_process_works_within_the_negative_cache_bound(
    db_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = db_engine.settings.with_overrides(key_negative_cache_seconds=0.5)
    here = KeyManager(db_engine.db, settings)
    plaintext = _presented_then_created(monkeypatch, here, "elsewhere")
    assert refused(here, plaintext) == "unknown"
    cached_by = time.monotonic()  # the negative entry was made before this...
    elsewhere_db = Database(settings.database_url)
    try:
        created = KeyManager(elsewhere_db, settings).create("elsewhere", scopes=("memory:read",))
    finally:
        elsewhere_db.close()
    monkeypatch.undo()
    sleep_until(cached_by + settings.key_negative_cache_seconds)  # ...so this is past the bound
    assert here.verify(plaintext).id == created.id


def test_random_secrets_for_a_known_key_id_cost_one_query_per_cache_period(db_engine: Engine) -> None:
    """The lookup id is public (lists, logs): guessing secrets for it must not cost a query each.

    Seen failing before the per-id hash cache: 1,000 guesses for one known id took 1,000 queries."""
    settings = db_engine.settings.with_overrides(key_cache_seconds=600.0)
    keys = KeyManager(db_engine.db, settings)
    real = keys.create("real", scopes=("memory:read",))
    guesses = [keyformat.new_token(real.id)[0] for _ in range(1000)]
    assert all(keyformat.parse_token(guess).lookup_id == real.id for guess in guesses)  # type: ignore[union-attr]
    with counted_queries(db_engine.db) as statements:
        reasons = {refused(keys, guess) for guess in guesses}
        # the event loop's cache-only check refuses a new guess too, without the database
        with pytest.raises(KeyRejected):
            keys.verify_cached(keyformat.new_token(real.id)[0])
    assert reasons == {"unknown"}
    assert len(statements) <= 1, len(statements)  # the id's row, read once
    assert keys.verify(real.key).id == real.id  # the real secret still gets in


def test_a_known_id_hash_is_trusted_only_for_the_cache_period(db_engine: Engine) -> None:
    settings = db_engine.settings.with_overrides(key_cache_seconds=0.3)
    keys = KeyManager(db_engine.db, settings)
    real = keys.create("real", scopes=("memory:read",))
    refused(keys, keyformat.new_token(real.id)[0])
    read_at = time.monotonic()
    sleep_until(read_at + settings.key_cache_seconds)
    with counted_queries(db_engine.db) as statements:
        refused(keys, keyformat.new_token(real.id)[0])
    assert len(statements) == 1  # past the period, the row is read again
