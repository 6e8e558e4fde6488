"""The database on SQLite and PostgreSQL: migrations, aware timestamps, and portable dump/load."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from db.workers import upgrade_together
from jamey_engine.config import Settings
from jamey_engine.db import Database, head_revision
from jamey_engine.errors import InvalidInput, StorageCorrupt, Unavailable
from jamey_engine.keys import KeyManager
from jamey_engine.models import ApiKey, Base, KeyEvent, Operation
from jamey_engine.oplog import record_operation

ODD_MOMENT = datetime(2031, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.close()


def test_a_fresh_database_is_upgraded_to_the_newest_migration(db: Database) -> None:
    assert db.current_revision() is None
    assert db.upgrade() == head_revision()
    assert db.current_revision() == head_revision()
    assert db.upgrade() == head_revision()  # a second upgrade is a no-op
    assert set(db.table_names()) <= set(sa.inspect(db.engine).get_table_names())


def test_first_use_upgrades_automatically(db: Database) -> None:
    assert db.count_rows() == {
        "api_keys": 0,
        "key_events": 0,
        "operations": 0,
        "retention_policies": 0,
        "retention_events": 0,
        "alert_notifications": 0,
    }
    assert db.current_revision() == head_revision()


def test_the_models_match_the_migrations(db: Database) -> None:
    db.upgrade()
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_timestamps_come_back_timezone_aware_in_utc(db: Database) -> None:
    from datetime import timezone

    paris_time = ODD_MOMENT.astimezone(timezone(timedelta(hours=1)))
    with db.session() as session:
        session.add(Operation(at=paris_time, kind="backup", status="success", duration_seconds=1.0))
    with db.session() as session:
        stored = session.scalars(sa.select(Operation)).one()
    assert stored.at == ODD_MOMENT
    assert stored.at.utcoffset() == timedelta(0)


def test_a_naive_timestamp_is_refused(db: Database) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), db.session() as session:
        session.add(Operation(at=datetime(2030, 1, 1), kind="backup", status="success", duration_seconds=1.0))
    assert db.count_rows()["operations"] == 0


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'jamey.db'}")
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000
        assert (tmp_path / "nested" / "dir" / "jamey.db").exists()
    finally:
        db.close()


@pytest.mark.slow  # four interpreters start
def test_processes_upgrading_one_database_at_once_do_not_collide(database_url: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(4)
    processes = [spawn.Process(target=upgrade_together, args=(database_url, barrier)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    check = Database(database_url)
    assert check.current_revision() == head_revision()
    check.close()


def test_a_database_from_a_newer_jamey_is_refused_clearly(db: Database) -> None:
    db.upgrade()
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    fresh = Database(str(db.url.render_as_string(hide_password=False)))
    try:
        with pytest.raises(StorageCorrupt, match="'f00dfeed'"):
            fresh.upgrade()
    finally:
        fresh.close()


def test_an_unreachable_database_is_unavailable() -> None:
    db = Database("postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    with pytest.raises(Unavailable, match=r"127\.0\.0\.1:1"):
        db.count_rows()


def test_an_unsupported_url_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="only sqlite"):
        Database("mysql://root:secret@127.0.0.1/x")
    with pytest.raises(InvalidInput, match="not an SQLAlchemy URL"):
        Database("not a url")


def filled(db: Database) -> None:
    """Rows in every table, with odd timestamps, nulls and a legacy key."""
    with db.session() as session:
        session.add(
            ApiKey(
                id="AAAAAAAAAAAA",
                name="ünïcode name",
                secret_hash="0" * 64,
                scopes="memory:read admin",
                rate_limit=None,
                created_at=ODD_MOMENT,
                expires_at=ODD_MOMENT + timedelta(days=3, microseconds=1),
                last_used_at=ODD_MOMENT + timedelta(seconds=1),
                legacy=True,
            )
        )
        for index in range(3):
            session.add(
                KeyEvent(
                    at=ODD_MOMENT + timedelta(microseconds=index),
                    event="created",
                    key_id="AAAAAAAAAAAA",
                    key_name="ünïcode name",
                    actor="cli",
                    detail=None if index else "first",
                )
            )
    record_operation(db, "backup", "success", 1.25, size_bytes=5_000_000_000, detail="big")
    record_operation(db, "prune", "success", 0.5, layer="working", count=7)


def test_dump_then_load_restores_every_row_exactly(db: Database) -> None:
    filled(db)
    dumped = db.dump()
    assert dumped["api_keys"][0]["created_at"] == ODD_MOMENT.isoformat()
    assert db.count_rows() == {
        "api_keys": 1,
        "key_events": 3,
        "operations": 2,
        "retention_policies": 0,
        "retention_events": 0,
        "alert_notifications": 0,
    }
    db.load({"api_keys": [], "key_events": [], "operations": []})
    assert db.count_rows() == {
        "api_keys": 0,
        "key_events": 0,
        "operations": 0,
        "retention_policies": 0,
        "retention_events": 0,
        "alert_notifications": 0,
    }
    db.load(dumped)
    assert db.dump() == dumped
    with db.session() as session:
        key = session.get(ApiKey, "AAAAAAAAAAAA")
        assert key is not None and key.created_at == ODD_MOMENT and key.legacy is True


@pytest.mark.postgres
def test_a_sqlite_dump_loads_into_postgresql(tmp_path: Path, postgres_url: str) -> None:
    sqlite = Database(f"sqlite:///{tmp_path / 'jamey.db'}")
    postgres = Database(postgres_url)
    try:
        filled(sqlite)
        dumped = sqlite.dump()
        postgres.load(dumped)
        assert postgres.dump() == dumped
        # PostgreSQL's sequences moved past the loaded ids: new rows do not collide
        record_operation(postgres, "restore", "success", 2.0)
        assert postgres.count_rows()["operations"] == 3
        back = Database(f"sqlite:///{tmp_path / 'again.db'}")
        back.load(postgres.dump())
        assert back.dump()["api_keys"] == dumped["api_keys"]
        back.close()
    finally:
        sqlite.close()
        postgres.close()


def test_new_rows_after_a_load_get_fresh_ids(db: Database) -> None:
    filled(db)
    db.load(db.dump())
    record_operation(db, "restore", "failure", 0.1)
    ids = [row["id"] for row in db.dump()["operations"]]
    assert len(ids) == len(set(ids)) == 3


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ({"users": []}, "unknown table(s) users"),
        ({"operations": [{"id": 1, "colour": "red"}]}, "unknown column(s) colour"),
        ({"operations": [{"id": 1, "at": "yesterday"}]}, "'yesterday'"),
        ({"operations": [{"id": 1, "kind": "backup"}]}, "do not fit"),
    ],
)
def test_a_bad_load_changes_nothing(
    db: Database, rows: dict[str, list[dict[str, object]]], needle: str
) -> None:
    filled(db)
    before = db.dump()
    with pytest.raises(InvalidInput) as info:
        db.load(rows)
    assert needle in str(info.value)
    assert db.dump() == before


def test_load_inside_the_callers_transaction_rolls_back_with_it(db: Database) -> None:
    filled(db)
    before = db.dump()
    with pytest.raises(RuntimeError), db.engine.begin() as conn:
        db.load({}, connection=conn)
        assert conn.execute(sa.select(sa.func.count()).select_from(ApiKey)).scalar_one() == 0
        raise RuntimeError("the caller's next step failed")
    assert db.dump() == before


def test_close_runs_the_close_hooks_once(db: Database) -> None:
    calls: list[str] = []
    db.on_close(lambda: calls.append("flushed"))
    db.close()
    db.close()
    assert calls == ["flushed"]


def test_key_rows_survive_a_round_trip_and_still_verify(db: Database, data_dir: Path) -> None:
    url = db.url.render_as_string(hide_password=False)
    settings = Settings.from_env({"JAMEY_DATA_DIR": str(data_dir), "JAMEY_DATABASE_URL": url})
    keys = KeyManager(db, settings)
    created = keys.create("survivor")
    dumped = db.dump()
    keys.revoke(created.id)
    db.load(dumped)
    assert KeyManager(db, settings).verify(created.key).id == created.id


@pytest.mark.postgres
def test_a_plain_postgresql_url_uses_the_psycopg_driver(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    db = Database(plain)
    try:
        assert db.safe_url.startswith("postgresql+psycopg://")
        assert db.upgrade() == head_revision()
    finally:
        db.close()
