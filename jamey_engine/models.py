"""SQLAlchemy 2 models of the Jamey database: API keys, their audit trail, the operation log,
the memory layers' retention policies with their audit trail, runbook runs, and plans.

The schema itself is owned by the Alembic migrations in ``jamey_engine/migrations``; a test
checks that these models and the migrations agree (autogenerate finds no difference).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from jamey_engine.durations import as_utc


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, on every database.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones, so the value is stored as
    naive UTC and the zone is put back when it is read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given where an aware UTC time is required")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return as_utc(value)


class Base(DeclarativeBase):
    """Declarative base of every Jamey table."""


class ApiKey(Base):
    """One API key. Only a hash of its secret is kept; ``id`` is the public lookup id."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(200))  # space-separated, in SCOPES order
    rate_limit: Mapped[str | None] = mapped_column(String(64))  # None: the configured default
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    grace_until: Mapped[datetime | None] = mapped_column(UTCDateTime())  # rotated: stops working then
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rotated_from: Mapped[str | None] = mapped_column(String(32))
    rotated_to: Mapped[str | None] = mapped_column(String(32))
    legacy: Mapped[bool] = mapped_column(default=False)  # imported from the API_KEY variable
    expiry_recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # audit "expired" written


class KeyEvent(Base):
    """One entry of the key audit trail: who did what to which key, and when."""

    __tablename__ = "key_events"
    __table_args__ = (Index("ix_key_events_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    event: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    key_name: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(100))
    detail: Mapped[str | None] = mapped_column(Text)


class Operation(Base):
    """One backup, restore, prune or backup deletion, by any process (read by the service's /metrics)."""

    __tablename__ = "operations"
    __table_args__ = (Index("ix_operations_kind_status_at", "kind", "status", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    duration_seconds: Mapped[float] = mapped_column(Float)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    layer: Mapped[str | None] = mapped_column(String(32))
    count: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(100))  # who ran it: a key's name, cli, schedule…


class KeyUsage(Base):
    """Requests answered for one key in one hour, by outcome: the per-key traffic an admin reads.

    Written in batches by every service process (added, never overwritten), so the totals are
    right with the database alone, whichever worker answered.
    """

    __tablename__ = "key_usage"
    __table_args__ = (Index("ix_key_usage_hour", "hour"),)

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    rate_limited: Mapped[int] = mapped_column(BigInteger, default=0)  # answered 429
    client_errors: Mapped[int] = mapped_column(BigInteger, default=0)  # other 4xx
    server_errors: Mapped[int] = mapped_column(BigInteger, default=0)  # 5xx


class AlertNotification(Base):
    """One alert's notification as Alertmanager delivered it to the webhook receiver.

    A firing alert and its resolution are two rows; Alertmanager's repeats and retries of the
    same notification (same fingerprint, start and status) are one row (the unique constraint).
    """

    __tablename__ = "alert_notifications"
    __table_args__ = (
        UniqueConstraint("fingerprint", "starts_at", "status", name="uq_alert_notifications_once"),
        Index("ix_alert_notifications_received_at", "received_at"),
        Index("ix_alert_notifications_alertname_starts_at", "alertname", "starts_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    alertname: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str | None] = mapped_column(String(32))
    layer: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # firing, resolved
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    labels: Mapped[str] = mapped_column(Text)  # JSON object
    annotations: Mapped[str] = mapped_column(Text)  # JSON object
    receiver: Mapped[str | None] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The diagnosis run started for this firing alert instance (on its firing row only);
    # CLAIMED while the run is being started, so one delivery of many starts it.
    diagnosis_run: Mapped[str | None] = mapped_column(String(32))


class RetentionPolicy(Base):
    """A memory layer's retention policy: its age and size limits (None: no limit), who set it and when.

    A layer without a row has no policy: nothing of it is ever deleted by retention.
    """

    __tablename__ = "retention_policies"

    layer: Mapped[str] = mapped_column(String(32), primary_key=True)
    max_age_seconds: Mapped[int | None] = mapped_column(BigInteger)
    max_bytes: Mapped[int | None] = mapped_column(BigInteger)
    set_by: Mapped[str] = mapped_column(String(100))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RetentionEvent(Base):
    """One entry of the retention audit trail: who changed which layer's policy, from what to what."""

    __tablename__ = "retention_events"
    __table_args__ = (Index("ix_retention_events_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    layer: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(100))
    before: Mapped[str | None] = mapped_column(Text)  # "max_age=30d max_bytes=1GiB", None: no policy
    after: Mapped[str | None] = mapped_column(Text)


class RunbookRun(Base):
    """One run of a runbook notebook, by any process: who ran it with what, and how far it got.

    ``change_slot`` is ``"change"`` while a run that changes data is queued or running, else
    NULL; its unique index is what lets only one such run exist at a time across processes.
    Not in ``TABLES``: a restore brings back keys and operations, not the history of runs.
    """

    __tablename__ = "runbook_runs"
    __table_args__ = (
        Index("ix_runbook_runs_status", "status"),
        Index("ix_runbook_runs_runbook_created", "runbook", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    runbook: Mapped[str] = mapped_column(String(100))
    parameters: Mapped[str] = mapped_column(Text)  # JSON object
    actor: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    changes_data: Mapped[bool] = mapped_column(default=False)
    change_slot: Mapped[str | None] = mapped_column(String(16), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    # The process behind ``pid`` (fsutil.process_identity): a reused pid is not the run's process.
    pid_identity: Mapped[str | None] = mapped_column(String(80))
    cell_index: Mapped[int | None] = mapped_column(Integer)
    cell_count: Mapped[int | None] = mapped_column(Integer)
    cell_heading: Mapped[str | None] = mapped_column(String(200))
    error_cell: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)  # JSON object the last cell returned
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    files_removed: Mapped[bool] = mapped_column(default=False)


class RunbookSchedule(Base):
    """A runbook run on a cron schedule by the service (actor ``schedule``).

    ``next_run_at`` is the next slot (UTC; None while paused); ``active_since`` is when it was
    created or last resumed, so a schedule is not called missed for the time it was paused;
    ``last_success_at`` is when its last successful run finished. Not in ``TABLES``, like runs.
    """

    __tablename__ = "runbook_schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    runbook: Mapped[str] = mapped_column(String(100))
    cron: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[str] = mapped_column(Text)  # JSON object
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_run_id: Mapped[str | None] = mapped_column(String(40))
    last_status: Mapped[str | None] = mapped_column(String(16))
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paused: Mapped[bool] = mapped_column(default=False)
    active_since: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AlertAcknowledgement(Base):
    """Someone said "I'm on it" for one alert instance (fingerprint and start): who, when, why.

    It ends when that instance resolves (a resolved notification for the same fingerprint and
    start); a new firing of the alert is a new instance, not acknowledged.
    """

    __tablename__ = "alert_acknowledgements"
    __table_args__ = (Index("ix_alert_acknowledgements_instance", "fingerprint", "starts_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    alertname: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(100))
    comment: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class Plan(Base):
    """One planned change (prune, restore, key revocation…): what it will change, its digest,
    confirm phrase and approval state, and how its apply went (see ``jamey_engine.plans``).

    Not in ``TABLES``: a restore brings back keys and their audit, not the history of plans.
    """

    __tablename__ = "plans"
    __table_args__ = (
        Index("ix_plans_status", "status"),
        Index("ix_plans_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    action: Mapped[str] = mapped_column(String(32))
    parameters: Mapped[str] = mapped_column(Text)  # JSON object
    status: Mapped[str] = mapped_column(String(20))
    summary: Mapped[str] = mapped_column(Text)  # JSON object: what will change
    digest: Mapped[str] = mapped_column(String(64))
    confirm_phrase: Mapped[str] = mapped_column(Text)
    requires_approval: Mapped[bool] = mapped_column(default=False)
    planned_by: Mapped[str] = mapped_column(String(100))
    planned_by_key: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(100))  # the approver (or rejecter)
    decided_by_key: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_comment: Mapped[str | None] = mapped_column(Text)
    applied_by: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    progress: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[str | None] = mapped_column(Text)  # JSON object: the apply's outcome
    error: Mapped[str | None] = mapped_column(Text)
    # The process applying the plan (fsutil.process_identity tells it from a reused pid): an
    # apply whose process died is failed by the next reader (plans.recovery).
    applier_host: Mapped[str | None] = mapped_column(String(255))
    applier_pid: Mapped[int | None] = mapped_column(Integer)
    applier_pid_identity: Mapped[str | None] = mapped_column(String(80))


class PlanEvent(Base):
    """One entry of the plans' audit trail: planned, approved, rejected, refused, applied…"""

    __tablename__ = "plan_events"
    __table_args__ = (Index("ix_plan_events_plan_id", "plan_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    plan_id: Mapped[str] = mapped_column(String(40))
    event: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(100))
    actor_key: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)


TABLES: tuple[Table, ...] = (
    cast(Table, ApiKey.__table__),
    cast(Table, KeyEvent.__table__),
    cast(Table, Operation.__table__),
    cast(Table, AlertNotification.__table__),
    cast(Table, RetentionPolicy.__table__),
    cast(Table, RetentionEvent.__table__),
)
