"""Sequence tracking and outages: per-node high-water marks, missing ranges, offline events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(
            sa.Column("contiguous_seq", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("max_seq", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("offline_event_id", sa.String(36), nullable=True))
    op.create_table(
        "seq_gaps",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("site", sa.String(32), nullable=False),
        sa.Column("node", sa.String(32), nullable=False),
        sa.Column("from_seq", sa.BigInteger(), nullable=False),
        sa.Column("to_seq", sa.BigInteger(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requests", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seq_gaps")),
    )
    op.create_index("ix_seq_gaps_site_node_from_seq", "seq_gaps", ["site", "node", "from_seq"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_seq_gaps_site_node_from_seq", table_name="seq_gaps")
    op.drop_table("seq_gaps")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("offline_event_id")
        batch.drop_column("max_seq")
        batch.drop_column("contiguous_seq")
