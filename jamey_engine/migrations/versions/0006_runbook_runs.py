"""Runbook runs: who ran which notebook with what, its progress, outcome and summary.

File 0006 of the chain 0001 -> 0002 -> 0006 -> 0004 -> 0005 -> 0003 (revision ids as existing
databases store them; the files are numbered in chain order).

Revision ID: 0003
Revises: 0005
Create Date: 2026-12-01 06:30:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create runbook_runs (the unique change_slot allows one data-changing run at a time)."""
    op.create_table(
        "runbook_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("runbook", sa.String(length=100), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("changes_data", sa.Boolean(), nullable=False),
        sa.Column("change_slot", sa.String(length=16), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("started_at", _utc(), nullable=True),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("cell_index", sa.Integer(), nullable=True),
        sa.Column("cell_count", sa.Integer(), nullable=True),
        sa.Column("cell_heading", sa.String(length=200), nullable=True),
        sa.Column("error_cell", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("cancel_requested_at", _utc(), nullable=True),
        sa.Column("files_removed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("change_slot"),
    )
    op.create_index("ix_runbook_runs_status", "runbook_runs", ["status"])
    op.create_index("ix_runbook_runs_runbook_created", "runbook_runs", ["runbook", "created_at"])


def downgrade() -> None:
    """Drop runbook_runs."""
    op.drop_index("ix_runbook_runs_runbook_created", table_name="runbook_runs")
    op.drop_index("ix_runbook_runs_status", table_name="runbook_runs")
    op.drop_table("runbook_runs")
