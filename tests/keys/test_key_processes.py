"""Several processes on one database: a revocation elsewhere takes effect within the cache bound."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from jamey_engine.db import Database
from jamey_engine.engine import Engine
from jamey_engine.errors import KeyRejected
from jamey_engine.keys import KeyManager


def wait_until_rejected(keys: KeyManager, plaintext: str, limit: float) -> float:
    """Seconds until verify refuses ``plaintext`` (fails the test after ``limit``)."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            keys.verify(plaintext)
        except KeyRejected as err:
            assert err.reason == "revoked"
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError(f"still accepted {limit}s after the revocation")


def test_a_revocation_by_another_manager_is_honoured_within_the_cache_period(db_engine: Engine) -> None:
    settings = db_engine.settings.with_overrides(key_cache_seconds=2.0)
    here = KeyManager(db_engine.db, settings)
    created = here.create("two-places")
    elsewhere_db = Database(settings.database_url)
    elsewhere = KeyManager(elsewhere_db, settings)
    assert elsewhere.count() == 1  # connected and ready, so the revocation below is quick
    here.verify(created.key)  # cached for up to 2 s from now
    try:
        elsewhere.revoke(created.id)
    finally:
        elsewhere_db.close()
    revoked_at = time.monotonic()
    assert here.verify(created.key).id == created.id  # still trusted from the cache
    waited = wait_until_rejected(here, created.key, limit=5.0)
    assert time.monotonic() - revoked_at <= 2.0 + 0.5, waited


def test_a_revocation_from_the_cli_in_another_process_takes_effect_within_the_bound(
    db_engine: Engine,
) -> None:
    settings = db_engine.settings.with_overrides(key_cache_seconds=1.0)
    here = KeyManager(db_engine.db, settings)
    created = here.create("cli-revoked")
    here.verify(created.key)
    env = {
        **os.environ,
        "JAMEY_DATA_DIR": str(settings.data_dir),
        "JAMEY_DATABASE_URL": settings.database_url,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "jamey_engine", "keys", "revoke", created.id],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    committed_by = time.monotonic()
    assert proc.returncode == 0, proc.stderr
    wait_until_rejected(here, created.key, limit=3.0)
    assert time.monotonic() - committed_by <= 1.0 + 0.5
