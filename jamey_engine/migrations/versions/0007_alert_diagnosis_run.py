"""Alert history rows record the diagnosis run started for a firing alert.

Revision ID: 0007
Revises: 0003
Create Date: 2026-12-06 02:20:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add alert_notifications.diagnosis_run."""
    with op.batch_alter_table("alert_notifications") as batch:
        batch.add_column(sa.Column("diagnosis_run", sa.String(length=32), nullable=True))


def downgrade() -> None:
    """Drop alert_notifications.diagnosis_run."""
    with op.batch_alter_table("alert_notifications") as batch:
        batch.drop_column("diagnosis_run")
