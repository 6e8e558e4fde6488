"""Runbook runs remember their process's identity (boot and start time), not only its pid.

A pid is reused after the process ends or the host reboots; ``pid_identity`` lets a reader tell
the run's own process from an unrelated one that got the same pid.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 02:55:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add runbook_runs.pid_identity (empty for runs recorded before: their pid alone decides)."""
    with op.batch_alter_table("runbook_runs") as batch:
        batch.add_column(sa.Column("pid_identity", sa.String(length=80), nullable=True))


def downgrade() -> None:
    """Drop runbook_runs.pid_identity."""
    with op.batch_alter_table("runbook_runs") as batch:
        batch.drop_column("pid_identity")
