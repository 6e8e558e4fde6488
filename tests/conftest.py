"""Shared fixtures: settings on a temporary data dir, real databases, and the servers' URLs.

PostgreSQL, Redis and Mosquitto run on every development and CI machine; their URLs come
from JAMEY_TEST_POSTGRES_URL, JAMEY_TEST_REDIS_URL and JAMEY_TEST_MQTT_URL with the
machine's defaults. With CI=true a skipped test fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine
from helpers import MQTT_URL, POSTGRES_URL, REDIS_URL, make_settings
from promserver import backfilled_prometheus  # one backfilled Prometheus for the whole session

from jamey_engine.config import Settings
from jamey_engine.engine import Engine

# The tests run as a Jamey process does: everything they create is owner-only, so the data
# dirs they make pass the same check the front doors run (jamey_engine.privacy).
os.umask(0o077)

CLOCK_KEY = pytest.StashKey[time_machine.travel]()

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


YEAR_AHEAD_MONTH_END = "year-ahead-month-end"


def clock_moment(option: str | None) -> str | None:
    """``--clock``'s moment: an ISO 8601 UTC time, or ``year-ahead-month-end``: noon on the last
    day of this month a year from today (so the moved run stays ahead of the calendar)."""
    if option != YEAR_AHEAD_MONTH_END:
        return option
    today = datetime.now(UTC).date()
    first_of_next = date(today.year + 1 + today.month // 12, today.month % 12 + 1, 1)
    return f"{first_of_next - timedelta(days=1)}T12:00:00Z"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock",
        metavar="ISO",
        default=None,
        help="run with this process's clock moved to this UTC moment (ISO 8601, or "
        f"{YEAR_AHEAD_MONTH_END}), ticking on from there (time-machine): `make test-dates` "
        "proves the date-sensitive modules pass on any date",
    )


def pytest_configure(config: pytest.Config) -> None:
    moment = clock_moment(config.getoption("--clock"))
    if moment:
        # Started before collection, so a module-level "now" is moved as well; servers in other
        # processes keep the real clock, which is why only in-process modules run this way.
        traveller = time_machine.travel(moment, tick=True)
        traveller.start()
        config.stash[CLOCK_KEY] = traveller


def pytest_unconfigure(config: pytest.Config) -> None:
    traveller = config.stash.get(CLOCK_KEY, None)
    if traveller is not None:
        traveller.stop()


def pytest_report_header(config: pytest.Config) -> str | None:
    moment = clock_moment(config.getoption("--clock"))
    return f"clock moved to {moment} (time-machine, ticking)" if moment else None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int) -> None:
    """In CI a skipped test is a failure: say so loudly. Then the modules that took longest
    (set-up, call and teardown summed): with one module per worker at a time, the wall time is
    set by them, so this is where to look first to make the suite faster."""
    per_module: dict[str, float] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            nodeid, duration = getattr(report, "nodeid", ""), getattr(report, "duration", None)
            if nodeid and isinstance(duration, float):
                module = nodeid.split("::", 1)[0]
                per_module[module] = per_module.get(module, 0.0) + duration
    if len(per_module) > 1:
        terminalreporter.write_sep("=", "slowest modules (seconds, set-up + call + teardown)")
        for module, seconds in sorted(per_module.items(), key=lambda item: -item[1])[:25]:
            terminalreporter.write_line(f"{seconds:8.1f}  {module}")
    skipped = terminalreporter.stats.get("skipped", [])
    if os.environ.get("CI") == "true" and skipped:
        terminalreporter.write_line(
            f"CI=true: {len(skipped)} test(s) skipped; in CI every test must run", red=True
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("CI") == "true" and reporter is not None and reporter.stats.get("skipped"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
