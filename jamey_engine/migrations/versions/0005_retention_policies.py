"""Memory retention policies per layer, and their audit trail.

File 0005 of the chain 0001 -> 0002 -> 0006 -> 0004 -> 0005 -> 0003 (revision ids as existing
databases store them; the files are numbered in chain order).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 06:40:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create retention_policies (one row per layer with a policy) and retention_events."""
    op.create_table(
        "retention_policies",
        sa.Column("layer", sa.String(length=32), nullable=False),
        sa.Column("max_age_seconds", sa.BigInteger(), nullable=True),
        sa.Column("max_bytes", sa.BigInteger(), nullable=True),
        sa.Column("set_by", sa.String(length=100), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("layer"),
    )
    op.create_table(
        "retention_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("layer", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_retention_events_at", "retention_events", ["at"], unique=False)


def downgrade() -> None:
    """Drop both tables (the policies and their history are lost)."""
    op.drop_index("ix_retention_events_at", table_name="retention_events")
    op.drop_table("retention_events")
    op.drop_table("retention_policies")
