"""The Jamey database: engine and sessions, Alembic migrations, and portable dump/load.

One URL names it: SQLite by default (``$JAMEY_DATA_DIR/jamey.db``, WAL mode, a busy timeout,
so the service, the workbench and the CLI can share it) or PostgreSQL
(``postgresql+psycopg://…``). The schema is brought up to date with the migrations shipped in
``jamey_engine/migrations`` automatically on first use, or explicitly by ``jamey db upgrade``.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from jamey_engine.config import Settings
from jamey_engine.durations import as_utc
from jamey_engine.errors import Busy, InvalidInput, StorageCorrupt, Unavailable
from jamey_engine.models import TABLES, ApiKey, Base, KeyEvent, Operation, UTCDateTime
from jamey_engine.redact import redact_url

__all__ = ["ApiKey", "Base", "Database", "KeyEvent", "Operation"]

log = logging.getLogger(__name__)
# Alembic announces its context ("Context impl SQLiteImpl.") each time the revision is read,
# which is every command; upgrade() logs what it does itself.
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_CONNECT_TIMEOUT = 10
# Any constant will do: it only has to be the same in every process that migrates.
_PG_MIGRATION_LOCK = 0x4A414D4559  # "JAMEY"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config pointing at the migrations shipped in the package (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration this version of jamey knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the package ships at least one migration"
    return head


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """A handle on the Jamey database at ``url``. Cheap to build: nothing connects until first use.

    ``engine`` and ``session()`` upgrade the schema on first use. ``close()`` runs the
    registered close hooks (e.g. the key manager's last-used flush) and disposes the pool.
    """

    def __init__(self, url: str) -> None:
        try:
            self.url = sa.make_url(url)
        except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
            raise InvalidInput(f"database URL {redact_url(url)!r} is not an SQLAlchemy URL") from None
        if self.url.drivername in ("postgresql", "postgres"):
            # psycopg 3 is the driver we ship; SQLAlchemy's default for postgresql:// is psycopg2.
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.dialect = self.url.get_backend_name()
        if self.dialect not in {"sqlite", "postgresql"}:
            raise InvalidInput(
                f"database URL {self.safe_url!r}: only sqlite:/// and postgresql+psycopg:// are supported"
            )
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite" and self.sqlite_path is not None:
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        if self.dialect == "postgresql":
            # A server that restarted leaves dead pooled connections: test each on checkout.
            # A host that does not answer fails after PG_CONNECT_TIMEOUT s instead of hanging.
            kwargs["pool_pre_ping"] = True
            kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT}
        self._engine = sa.create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            sa.event.listen(self._engine, "connect", _set_sqlite_pragmas)
        self._ready = False
        self._ready_lock = threading.Lock()
        self._close_hooks: list[Callable[[], None]] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The database ``settings.database_url`` names."""
        return cls(settings.database_url)

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        return redact_url(self.url.render_as_string(hide_password=False))

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, or None for PostgreSQL or an in-memory SQLite database."""
        if self.dialect != "sqlite" or self.url.database in (None, "", ":memory:"):
            return None
        return Path(str(self.url.database)).expanduser().absolute()

    # -- schema ---------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy Engine, with the schema upgraded to the newest migration."""
        if not self._ready:
            with self._ready_lock:
                if not self._ready:
                    if self.current_revision() != head_revision():
                        self.upgrade()
                    self._ready = True
        return self._engine

    def current_revision(self) -> str | None:
        """The migration the database is at (None for an empty database).

        Raises Unavailable when the database cannot be reached.
        """
        try:
            with self._engine.connect() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        except sa.exc.OperationalError as err:
            raise self._unavailable(err) from None

    def upgrade(self) -> str:
        """Apply every pending migration (safe when several processes do it at once).

        Returns the revision the database is now at. Raises StorageCorrupt when the database
        is at a revision this version of jamey does not know (made by a newer jamey), and
        Unavailable when it cannot be reached.
        """
        head = head_revision()
        with self._migration_lock():
            try:
                with self._engine.begin() as conn:
                    if self.dialect == "postgresql":
                        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
                    current = MigrationContext.configure(conn).get_current_revision()
                    if current != head:
                        self._check_known(current)
                        log.info("upgrading database %s from %s to %s", self.safe_url, current, head)
                        command.upgrade(alembic_config(conn), "head")
            except sa.exc.OperationalError as err:
                raise self._unavailable(err) from None
        self._ready = True
        return head

    def _check_known(self, revision: str | None) -> None:
        if revision is None:
            return
        scripts = ScriptDirectory.from_config(alembic_config())
        known = {script.revision for script in scripts.walk_revisions()}
        if revision not in known:
            raise StorageCorrupt(
                f"database {self.safe_url} is at schema revision {revision!r}, which this version of "
                "jamey does not know (was it upgraded by a newer jamey?)",
                path=self.safe_url,
            )

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """Serialise migrations of one SQLite file across processes (PostgreSQL uses an advisory lock)."""
        path = self.sqlite_path
        if path is None:
            yield
            return
        with open(path.with_name(path.name + ".migrate-lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- sessions -------------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A Session that commits when the block succeeds and rolls back when it raises.

        Objects stay usable after the block (``expire_on_commit=False``).
        """
        with self._translated(), Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A Connection (no implicit commit) with driver errors turned into Busy/Unavailable."""
        with self._translated(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A Connection in a transaction committed when the block succeeds (errors translated)."""
        with self._translated(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.OperationalError as err:
            raise self._unavailable(err) from None

    def _unavailable(self, err: sa.exc.OperationalError) -> Busy | Unavailable:
        reason = _one_line(err.orig)
        if "locked" in reason or "busy" in reason:
            return Busy(f"database {self.safe_url} stayed busy: {reason}")
        return Unavailable(f"database {self.safe_url} cannot be used: {reason}")

    def on_close(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` when the database is closed (before the pool is disposed)."""
        self._close_hooks.append(hook)

    def close(self) -> None:
        """Run the close hooks, then release every pooled connection. Safe to call twice."""
        hooks, self._close_hooks = self._close_hooks, []
        for hook in hooks:
            try:
                hook()
            except Exception:
                log.warning("a database close hook failed", exc_info=True)
        self._engine.dispose()

    # -- portable export and import --------------------------------------------------------

    def table_names(self) -> list[str]:
        """The Jamey tables (not Alembic's bookkeeping), in dump order."""
        return [table.name for table in TABLES]

    def count_rows(self) -> dict[str, int]:
        """How many rows each Jamey table holds."""
        with self.connect() as conn:
            return {
                table.name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
                for table in TABLES
            }

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every Jamey table, as JSON-friendly dicts (timestamps as ISO 8601 strings).

        ``load()`` of the result restores the same rows exactly, on SQLite or PostgreSQL.
        """
        result: dict[str, list[dict[str, Any]]] = {}
        with self.connect() as conn:
            # One snapshot for all tables, so a backup taken while keys change is consistent.
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            elif conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN")  # pysqlite would run each SELECT on its own
            for table in TABLES:
                rows = conn.execute(sa.select(table).order_by(*table.primary_key)).mappings()
                result[table.name] = [
                    {name: _to_portable(value) for name, value in row.items()} for row in rows
                ]
        return result

    def load(self, rows: dict[str, list[dict[str, Any]]], *, connection: Connection | None = None) -> None:
        """Replace every row of every Jamey table with ``rows`` (as ``dump()`` returns them).

        All in one transaction: ``connection``'s when given (the caller commits), else a new one.
        A table missing from ``rows`` ends up empty. Raises InvalidInput (changing nothing) on an
        unknown table or column, or rows the schema refuses.
        """
        prepared = _prepare_rows(rows)
        try:
            if connection is not None:
                self._replace_rows(connection, prepared)
                return
            with self.begin() as conn:
                self._replace_rows(conn, prepared)
        except (sa.exc.IntegrityError, sa.exc.DataError, sa.exc.StatementError) as err:
            raise InvalidInput(f"the rows do not fit the database schema: {_one_line(err.orig)}") from None

    def _replace_rows(self, conn: Connection, prepared: dict[str, list[dict[str, Any]]]) -> None:
        for table in reversed(TABLES):
            conn.execute(table.delete())
        for table in TABLES:
            if prepared[table.name]:
                conn.execute(table.insert(), prepared[table.name])
        if conn.dialect.name == "postgresql":
            # Explicit ids do not advance PostgreSQL's sequences; move them past the loaded rows.
            for table in TABLES:
                for column in table.primary_key:
                    if column.autoincrement is True:
                        conn.execute(
                            sa.text(
                                f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                                f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"
                            )
                        )


def _one_line(error: object) -> str:
    """The first line of a driver's message (psycopg adds hints on further lines)."""
    lines = str(error).strip().splitlines()
    return " ".join(lines[0].split()) if lines else type(error).__name__


def _to_portable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def _prepare_rows(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    by_name = {table.name: table for table in TABLES}
    unknown = set(rows) - set(by_name)
    if unknown:
        raise InvalidInput(
            f"unknown table(s) {', '.join(sorted(unknown))}; the tables are {', '.join(by_name)}"
        )
    prepared: dict[str, list[dict[str, Any]]] = {}
    for name, table in by_name.items():
        columns = {column.name: column for column in table.columns}
        out = []
        for index, row in enumerate(rows.get(name, [])):
            extra = set(row) - set(columns)
            if extra:
                raise InvalidInput(f"table {name} row {index}: unknown column(s) {', '.join(sorted(extra))}")
            converted = {}
            for key, value in row.items():
                if isinstance(columns[key].type, UTCDateTime) and isinstance(value, str):
                    value = _parse_iso(value, f"{name}.{key}")
                converted[key] = value
            out.append(converted)
        prepared[name] = out
    return prepared


def _parse_iso(text: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field} {text!r} is not an ISO 8601 timestamp") from None
    return as_utc(parsed)
