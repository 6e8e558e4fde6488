"""Fixtures for the service tests: a real app on a real data dir and database, and key personas.

The shared app (``client``) and its personas are built once per session: admin_key (admin),
reader_key (memory:read), writer_key (memory:write), revoked_key and expired_key, all real
keys in the real SQLite database, with generous rate limits so tests do not trip each other.
Tests that need their own settings (small limits, a body bound, a down broker) use ``make_client``;
tests of the real process use ``serve``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import service_support
from service_support import (
    Persona,
    TestClient,
    age_key,
    make_persona,
    service_settings,
    test_client,
)

from jamey_engine.engine import Engine
from jamey_engine.service import create_app

# Fixtures shared with tests/abuse, defined once in service_support.
make_client = service_support.make_client
serve = service_support.serve


@pytest.fixture(scope="session")
def service_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    data_dir = tmp_path_factory.mktemp("service") / "data"
    data_dir.mkdir()
    engine = Engine(service_settings(data_dir))
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def service_app(service_engine: Engine) -> Any:
    return create_app(service_engine)


@pytest.fixture(scope="session")
def client(service_app: Any) -> Iterator[TestClient]:
    with test_client(service_app) as c:
        yield c


@pytest.fixture(scope="session")
def admin_key(service_engine: Engine) -> Persona:
    return make_persona(service_engine, "alice-admin", ("admin",))


@pytest.fixture(scope="session")
def reader_key(service_engine: Engine) -> Persona:
    return make_persona(service_engine, "bob-reader", ("memory:read",))


@pytest.fixture(scope="session")
def writer_key(service_engine: Engine) -> Persona:
    return make_persona(service_engine, "carol-writer", ("memory:write",))


@pytest.fixture(scope="session")
def revoked_key(service_engine: Engine) -> Persona:
    persona = make_persona(service_engine, "dave-revoked", ("memory:read",))
    service_engine.keys.revoke(persona.id, actor="test")
    return persona


@pytest.fixture(scope="session")
def expired_key(service_engine: Engine) -> Persona:
    persona = make_persona(service_engine, "erin-expired", ("memory:read",))
    age_key(service_engine, persona.id)
    return persona
