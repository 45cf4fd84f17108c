"""Express reports (快报): the 2-hour clock of a confirmed mortality cluster or a protected
animal's death.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "express_reports",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "event_id",
            sa.String(36),
            sa.ForeignKey("events.event_id", name="fk_express_reports_event_id_events"),
            nullable=False,
        ),
        sa.Column("site", sa.String(32), nullable=False),
        sa.Column("opened_at", TIME, nullable=False),
        sa.Column("deadline", TIME, nullable=False),
        sa.Column("reminded_60_at", TIME, nullable=True),
        sa.Column("reminded_90_at", TIME, nullable=True),
        sa.Column("sent_at", TIME, nullable=True),
        sa.Column("path", sa.String(512), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_express_reports"),
        sa.UniqueConstraint("event_id", name="uq_express_reports_event_id"),
    )
    op.create_index(
        "ix_express_reports_sent_at_deadline", "express_reports", ["sent_at", "deadline"]
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_express_reports_sent_at_deadline", table_name="express_reports")
    op.drop_table("express_reports")
