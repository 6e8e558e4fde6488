"""Per-key usage: requests, 429s and errors per key and hour.

File 0003 of the chain 0001 -> 0002 -> 0006 -> 0004 -> 0005 -> 0003 (revision ids as existing
databases store them; the files are numbered in chain order).

Revision ID: 0006
Revises: 0002
Create Date: 2026-12-01 06:40:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create key_usage."""
    op.create_table(
        "key_usage",
        sa.Column("key_id", sa.String(length=32), primary_key=True),
        sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("requests", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("rate_limited", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("client_errors", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("server_errors", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_index("ix_key_usage_hour", "key_usage", ["hour"])


def downgrade() -> None:
    """Drop key_usage."""
    op.drop_index("ix_key_usage_hour", table_name="key_usage")
    op.drop_table("key_usage")
