"""Shared fixtures: settings on a temporary data dir, real databases, and the servers' URLs.

PostgreSQL, Redis and Mosquitto run on every development and CI machine; their URLs come
from JAMEY_TEST_POSTGRES_URL, JAMEY_TEST_REDIS_URL and JAMEY_TEST_MQTT_URL with the
machine's defaults. With CI=true a skipped test fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import MQTT_URL, POSTGRES_URL, REDIS_URL, make_settings
from promserver import backfilled_prometheus  # one backfilled Prometheus for the whole session

from jamey_engine.config import Settings
from jamey_engine.engine import Engine

# The tests run as a Jamey process does: everything they create is owner-only, so the data
# dirs they make pass the same check the front doors run (jamey_engine.privacy).
os.umask(0o077)

__all__ = ["MQTT_URL", "POSTGRES_URL", "REDIS_URL", "backfilled_prometheus", "make_settings"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return make_settings(data_dir)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = Engine(settings)
    yield eng
    eng.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"jamey_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, data_dir: Path) -> str:
    """Every database test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{data_dir / 'jamey.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def db_settings(data_dir: Path, database_url: str) -> Settings:
    return make_settings(data_dir, JAMEY_DATABASE_URL=database_url)


@pytest.fixture
def db_engine(db_settings: Settings) -> Iterator[Engine]:
    eng = Engine(db_settings)
    yield eng
    eng.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int) -> None:
    """In CI a skipped test is a failure: say so loudly."""
    skipped = terminalreporter.stats.get("skipped", [])
    if os.environ.get("CI") == "true" and skipped:
        terminalreporter.write_line(
            f"CI=true: {len(skipped)} test(s) skipped; in CI every test must run", red=True
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("CI") == "true" and reporter is not None and reporter.stats.get("skipped"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
