"""Per-key usage counts (keys/usage.py) when the database fails a flush: nothing is lost."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from jamey_engine.engine import Engine
from jamey_engine.keys.usage import totals_for_metrics


def test_a_flush_the_database_refuses_keeps_the_counts_for_the_next_one(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    key = engine.keys.create("counted-bot", actor="test")
    for status in (200, 200, 404, 500, 429):
        engine.keys.usage.count(key.id, status)
    with engine.db.engine.begin() as conn:  # the table is gone: the flush's insert fails for real
        conn.execute(sa.text("ALTER TABLE key_usage RENAME TO key_usage_away"))
    with caplog.at_level(logging.WARNING, logger="jamey_engine.keys.usage"):
        engine.keys.usage.flush()  # never raises
    assert "could not record the usage of 1 API key(s); kept for the next flush" in caplog.text
    engine.keys.usage.count(key.id, 200)  # counted meanwhile: added to what was kept
    with engine.db.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE key_usage_away RENAME TO key_usage"))
    engine.keys.usage.flush()
    [totals] = [t for t in totals_for_metrics(engine.db) if t.key_id == key.id]
    assert (totals.requests, totals.rate_limited, totals.client_errors, totals.server_errors) == (6, 1, 1, 1)
    engine.keys.usage.flush()  # nothing pending: nothing added twice
    [again] = [t for t in totals_for_metrics(engine.db) if t.key_id == key.id]
    assert again.requests == 6
