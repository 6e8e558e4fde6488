"""Alert history: the notifications Alertmanager delivers to the webhook receiver.

File 0004 of the chain 0001 -> 0002 -> 0006 -> 0004 -> 0005 -> 0003 (revision ids as existing
databases store them; the files are numbered in chain order).

Revision ID: 0004
Revises: 0006 (the key usage table, which landed first)
Create Date: 2026-12-01 06:45:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create alert_notifications, one row per (fingerprint, startsAt, status)."""
    op.create_table(
        "alert_notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("alertname", sa.String(length=200), nullable=False),
        sa.Column("severity", sa.String(length=32), nullable=True),
        sa.Column("layer", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("starts_at", _utc(), nullable=False),
        sa.Column("ends_at", _utc(), nullable=True),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("annotations", sa.Text(), nullable=False),
        sa.Column("receiver", sa.String(length=100), nullable=True),
        sa.Column("received_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint", "starts_at", "status", name="uq_alert_notifications_once"),
    )
    op.create_index("ix_alert_notifications_received_at", "alert_notifications", ["received_at"])
    op.create_index(
        "ix_alert_notifications_alertname_starts_at", "alert_notifications", ["alertname", "starts_at"]
    )


def downgrade() -> None:
    """Drop alert_notifications."""
    op.drop_index("ix_alert_notifications_alertname_starts_at", table_name="alert_notifications")
    op.drop_index("ix_alert_notifications_received_at", table_name="alert_notifications")
    op.drop_table("alert_notifications")
