"""Runbook schedules (with the two shipped defaults, paused) and alert acknowledgements.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 02:30:00

"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Shipped paused, so nothing runs until an admin resumes them: a daily growth report and a
# weekly dry run of the duplicate finder.
DEFAULTS: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("memory_growth", "0 6 * * *", {}),
    ("dedupe_memories", "0 5 * * 0", {"dry_run": True}),
)


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create runbook_schedules (and its paused defaults) and alert_acknowledgements."""
    schedules = op.create_table(
        "runbook_schedules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("runbook", sa.String(length=100), nullable=False),
        sa.Column("cron", sa.String(length=100), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("next_run_at", _utc(), nullable=True),
        sa.Column("last_run_id", sa.String(length=40), nullable=True),
        sa.Column("last_status", sa.String(length=16), nullable=True),
        sa.Column("last_success_at", _utc(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("active_since", _utc(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "alert_acknowledgements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("alertname", sa.String(length=200), nullable=False),
        sa.Column("starts_at", _utc(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_alert_acknowledgements_instance", "alert_acknowledgements", ["fingerprint", "starts_at"]
    )
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # stored naive UTC, as models.UTCDateTime does
    op.bulk_insert(
        schedules,
        [
            {
                "runbook": runbook,
                "cron": cron,
                "timezone": "UTC",
                "parameters": json.dumps(parameters, sort_keys=True),
                "next_run_at": None,
                "paused": True,
                "active_since": now,
                "created_by": "jamey",
                "created_at": now,
            }
            for runbook, cron, parameters in DEFAULTS
        ],
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index("ix_alert_acknowledgements_instance", table_name="alert_acknowledgements")
    op.drop_table("alert_acknowledgements")
    op.drop_table("runbook_schedules")
