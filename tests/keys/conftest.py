"""Key fixtures: a KeyManager on each database, and persona keys (admin, reader, revoked, expired)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from jamey_engine.engine import Engine
from jamey_engine.keys import CreatedKey, KeyManager


@pytest.fixture
def keys(db_engine: Engine) -> KeyManager:
    """The key manager of an Engine on SQLite and on PostgreSQL (events off)."""
    return db_engine.keys


@pytest.fixture
def admin_key(keys: KeyManager) -> CreatedKey:
    return keys.create("alice-admin", scopes=("memory:read", "memory:write", "admin"))


@pytest.fixture
def reader_key(keys: KeyManager) -> CreatedKey:
    return keys.create("bob-reader", scopes=("memory:read",), rate_limit="10/second")


@pytest.fixture
def revoked_key(keys: KeyManager) -> CreatedKey:
    created = keys.create("charlie-revoked")
    keys.revoke(created.id)
    return created


class StatementCounter:
    """Counts the SQL statements an Engine sends (a real listener on the real engine)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.statements: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        self.statements.append(statement)

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)


@pytest.fixture
def statements(keys: KeyManager) -> Iterator[StatementCounter]:
    counter = StatementCounter(keys.db.engine)
    yield counter
    counter.close()


ONE_HOUR = timedelta(hours=1)
