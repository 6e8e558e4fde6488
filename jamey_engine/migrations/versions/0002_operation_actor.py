"""Who ran each operation: the actor of a backup, restore, prune or backup deletion.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 01:45:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add operations.actor (NULL for runs recorded before it existed)."""
    op.add_column("operations", sa.Column("actor", sa.String(length=100), nullable=True))


def downgrade() -> None:
    """Drop operations.actor (a table rebuild on SQLite)."""
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("actor")
