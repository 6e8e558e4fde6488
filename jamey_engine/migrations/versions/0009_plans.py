"""Plans: every data-changing action planned, approved and applied through one contract.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 02:30:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create plans and plan_events."""
    op.create_table(
        "plans",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("confirm_phrase", sa.Text(), nullable=False),
        sa.Column("requires_approval", sa.Boolean(), nullable=False),
        sa.Column("planned_by", sa.String(length=100), nullable=False),
        sa.Column("planned_by_key", sa.String(length=32), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_by_key", sa.String(length=32), nullable=True),
        sa.Column("decided_at", _utc(), nullable=True),
        sa.Column("decision_comment", sa.Text(), nullable=True),
        sa.Column("applied_by", sa.String(length=100), nullable=True),
        sa.Column("started_at", _utc(), nullable=True),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("progress", sa.String(length=200), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_plans_status", "plans", ["status"])
    op.create_index("ix_plans_created_at", "plans", ["created_at"])
    op.create_table(
        "plan_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("plan_id", sa.String(length=40), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("actor_key", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_plan_events_plan_id", "plan_events", ["plan_id"])


def downgrade() -> None:
    """Drop plan_events and plans."""
    op.drop_index("ix_plan_events_plan_id", table_name="plan_events")
    op.drop_table("plan_events")
    op.drop_index("ix_plans_created_at", table_name="plans")
    op.drop_index("ix_plans_status", table_name="plans")
    op.drop_table("plans")
