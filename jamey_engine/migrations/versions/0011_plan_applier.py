"""Plans remember the process applying them (host, pid and its identity).

An apply killed mid-way (SIGKILL, a crash, a reboot) left its plan ``applying`` for good; with
the applier's process recorded, the next reader on that host sees it gone and says so, as the
runbook runs do for ``interrupted``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 09:05:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add plans.applier_host, applier_pid and applier_pid_identity (empty for plans applied before)."""
    with op.batch_alter_table("plans") as batch:
        batch.add_column(sa.Column("applier_host", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("applier_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("applier_pid_identity", sa.String(length=80), nullable=True))


def downgrade() -> None:
    """Drop the applier columns of plans."""
    with op.batch_alter_table("plans") as batch:
        batch.drop_column("applier_pid_identity")
        batch.drop_column("applier_pid")
        batch.drop_column("applier_host")
