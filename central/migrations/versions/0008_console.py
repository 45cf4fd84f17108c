"""Staff console: accounts, browser sessions, cases opened from events, who opened which
event, report sign-off, node outages (the status timeline), the audit's "before" and dismissal
reason on each decision, and the review queue's index.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(JSONB(), "postgresql")
QUEUE_INDEX = "ix_events_review_status_kind_severity_captured_at"


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("event_reviews") as batch:
        batch.add_column(sa.Column("before", sa.String(16), nullable=True))
        batch.add_column(sa.Column("reason", sa.String(32), nullable=True))
    op.create_index(QUEUE_INDEX, "events", ["review_status", "kind", "severity", "captured_at"])
    op.create_table(
        "users",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False, server_default=""),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("sites", JSON, nullable=False),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column(
            "user_id",
            BIG_ID,
            sa.ForeignKey("users.id", name="fk_web_sessions_user_id_users", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_sha256", name="pk_web_sessions"),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_table(
        "event_opens",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column(
            "event_id",
            sa.String(36),
            sa.ForeignKey("events.event_id", name="fk_event_opens_event_id_events"),
            nullable=False,
        ),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_opens"),
        sa.UniqueConstraint("event_id", "user_name", name="uq_event_opens_event_id_user_name"),
    )
    op.create_table(
        "report_signoffs",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("report_date", sa.Date(), nullable=False),
        sa.Column("site", sa.String(32), nullable=False),
        sa.Column("signer", sa.String(64), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("report_as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_report_signoffs"),
        sa.UniqueConstraint("report_date", "site", name="uq_report_signoffs_report_date"),
    )
    op.create_table(
        "node_outages",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(32), nullable=False),
        sa.Column("node", sa.String(32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_node_outages"),
    )
    op.create_index(
        "ix_node_outages_site_node_started_at", "node_outages", ["site", "node", "started_at"]
    )
    op.create_table(
        "cases",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(32), nullable=False),
        sa.Column(
            "event_id",
            sa.String(36),
            sa.ForeignKey("events.event_id", name="fk_cases_event_id_events"),
            nullable=False,
        ),
        sa.Column("opened_by", sa.String(64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
        sa.UniqueConstraint("event_id", name="uq_cases_event_id"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("cases")
    op.drop_index("ix_node_outages_site_node_started_at", table_name="node_outages")
    op.drop_table("node_outages")
    op.drop_table("report_signoffs")
    op.drop_table("event_opens")
    op.drop_index("ix_web_sessions_user_id", table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_table("users")
    op.drop_index(QUEUE_INDEX, table_name="events")
    with op.batch_alter_table("event_reviews") as batch:
        batch.drop_column("reason")
        batch.drop_column("before")
