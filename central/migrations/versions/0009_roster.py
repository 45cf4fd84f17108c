"""Duty roster: recurring shifts, one-off overrides, official holidays and make-up workdays.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "duty_shifts",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("day_kind", sa.String(16), nullable=False),
        sa.Column("start_time", sa.Time(), nullable=False),
        sa.Column("end_time", sa.Time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_duty_shifts"),
    )
    op.create_index("ix_duty_shifts_site", "duty_shifts", ["site"])
    op.create_table(
        "duty_overrides",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_duty_overrides"),
    )
    op.create_index("ix_duty_overrides_site_starts_at", "duty_overrides", ["site", "starts_at"])
    op.create_table(
        "roster_days",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("site", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_roster_days"),
    )
    op.create_index("ix_roster_days_day", "roster_days", ["day"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_roster_days_day", table_name="roster_days")
    op.drop_table("roster_days")
    op.drop_index("ix_duty_overrides_site_starts_at", table_name="duty_overrides")
    op.drop_table("duty_overrides")
    op.drop_index("ix_duty_shifts_site", table_name="duty_shifts")
    op.drop_table("duty_shifts")
