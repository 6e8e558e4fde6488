"""Several processes on one database: a revocation elsewhere takes effect within the cache bound."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import pytest
from helpers import is_revoked, sleep_until, wait_until

from jamey_engine.db import Database
from jamey_engine.engine import Engine
from jamey_engine.errors import KeyRejected
from jamey_engine.keys import KeyManager


def test_a_revocation_by_another_manager_is_trusted_from_the_cache_meanwhile(db_engine: Engine) -> None:
    settings = db_engine.settings.with_overrides(key_cache_seconds=600.0)
    here = KeyManager(db_engine.db, settings)
    created = here.create("two-places")
    here.verify(created.key)  # cached for ten minutes
    elsewhere_db = Database(settings.database_url)
    try:
        KeyManager(elsewhere_db, settings).revoke(created.id)
    finally:
        elsewhere_db.close()
    assert here.verify(created.key).id == created.id  # another process's change waits out the cache
    here.forget_cache()
    with pytest.raises(KeyRejected) as rejected:
        here.verify(created.key)
    assert rejected.value.reason == "revoked"


def test_a_revocation_by_another_manager_is_honoured_within_the_cache_period(db_engine: Engine) -> None:
    settings = db_engine.settings.with_overrides(key_cache_seconds=2.0)
    here = KeyManager(db_engine.db, settings)
    created = here.create("two-places")
    elsewhere_db = Database(settings.database_url)
    elsewhere = KeyManager(elsewhere_db, settings)
    assert elsewhere.count() == 1
    here.verify(created.key)
    cached_by = time.monotonic()  # the cache entry was made before this...
    try:
        elsewhere.revoke(created.id)  # ...and so before the revocation's commit
    finally:
        elsewhere_db.close()
    sleep_until(cached_by + settings.key_cache_seconds)  # no later than the bound after the commit
    with pytest.raises(KeyRejected) as rejected:
        here.verify(created.key)
    assert rejected.value.reason == "revoked"


def test_a_revocation_from_the_cli_in_another_process_takes_effect_within_the_bound(
    db_engine: Engine,
) -> None:
    settings = db_engine.settings.with_overrides(key_cache_seconds=1.0)
    here = KeyManager(db_engine.db, settings)
    created = here.create("cli-revoked")
    env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(settings.data_dir),
        "JAMEY_DATABASE_URL": settings.database_url,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "jamey_engine", "keys", "revoke", created.id, "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )

    # Keep using the key while the CLI runs (so our cache is fresh when the revocation
    # commits), and note when the commit is first seen in the database.
    def commit_seen() -> float | None:
        with contextlib.suppress(KeyRejected):
            here.verify(created.key)
        seen = time.monotonic() if is_revoked(db_engine.db, created.id) else None
        assert proc.poll() in (None, 0), proc.communicate()[1]
        return seen

    committed = wait_until(commit_seen, 120, "the CLI's revocation to commit", every=0.01)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    sleep_until(committed + settings.key_cache_seconds)
    with pytest.raises(KeyRejected) as rejected:
        here.verify(created.key)
    assert rejected.value.reason == "revoked"
