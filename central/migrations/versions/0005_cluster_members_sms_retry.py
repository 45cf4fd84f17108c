"""Members of central mortality clusters; when a failed SMS is tried again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "cluster_members",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "cluster_event_id",
            sa.String(36),
            sa.ForeignKey("events.event_id", name="fk_cluster_members_cluster_event_id_events"),
            nullable=False,
        ),
        sa.Column(
            "death_event_id",
            sa.String(36),
            sa.ForeignKey("events.event_id", name="fk_cluster_members_death_event_id_events"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_cluster_members"),
        sa.UniqueConstraint("death_event_id", name="uq_cluster_members_death_event_id"),
    )
    op.create_index("ix_cluster_members_cluster_event_id", "cluster_members", ["cluster_event_id"])
    with op.batch_alter_table("sms_messages") as batch:
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("sms_messages") as batch:
        batch.drop_column("next_attempt_at")
    op.drop_index("ix_cluster_members_cluster_event_id", table_name="cluster_members")
    op.drop_table("cluster_members")
