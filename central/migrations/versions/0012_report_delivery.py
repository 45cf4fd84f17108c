"""Report delivery: who filled in a signed report (填报人, phone), and each site's daily report
on its way to the bureau by mail or HTTP upload, with every attempt.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("report_signoffs") as batch:
        batch.add_column(sa.Column("reporter", sa.String(64), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("reporter_phone", sa.String(32), nullable=False, server_default="")
        )
    op.create_table(
        "report_deliveries",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False, server_default="daily"),
        sa.Column("report_date", sa.Date(), nullable=False),
        sa.Column("site", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("signed", sa.Boolean(), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("files", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("prepared_at", TIME, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TIME, nullable=True),
        sa.Column("delivered_at", TIME, nullable=True),
        sa.Column("receipt", sa.String(255), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_report_deliveries"),
        sa.UniqueConstraint(
            "idempotency_key", "channel", name="uq_report_deliveries_idempotency_key"
        ),
    )
    op.create_index(
        "ix_report_deliveries_report_date_site", "report_deliveries", ["report_date", "site"]
    )
    op.create_index(
        "ix_report_deliveries_state_next_attempt_at",
        "report_deliveries",
        ["state", "next_attempt_at"],
    )
    op.create_table(
        "delivery_attempts",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(
            "delivery_id",
            ID,
            sa.ForeignKey(
                "report_deliveries.id", name="fk_delivery_attempts_delivery_id_report_deliveries"
            ),
            nullable=False,
        ),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_attempts"),
    )
    op.create_index("ix_delivery_attempts_delivery_id", "delivery_attempts", ["delivery_id"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_delivery_attempts_delivery_id", table_name="delivery_attempts")
    op.drop_table("delivery_attempts")
    op.drop_index("ix_report_deliveries_state_next_attempt_at", table_name="report_deliveries")
    op.drop_index("ix_report_deliveries_report_date_site", table_name="report_deliveries")
    op.drop_table("report_deliveries")
    with op.batch_alter_table("report_signoffs") as batch:
        batch.drop_column("reporter_phone")
        batch.drop_column("reporter")
