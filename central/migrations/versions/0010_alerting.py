"""Alert lifecycle: alerts (incidents under escalation), their events, the notifications of each
escalation step, and maintenance silences.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "alerts",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(48), nullable=False),
        sa.Column("group_key", sa.String(255), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("ack_code", sa.String(8), nullable=False),
        sa.Column("title_zh", sa.String(200), nullable=False, server_default=""),
        sa.Column("opened_at", TIME, nullable=False),
        sa.Column("last_event_at", TIME, nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("step", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("round", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_action_at", TIME, nullable=True),
        sa.Column("notified_at", TIME, nullable=True),
        sa.Column("last_notified_at", TIME, nullable=True),
        sa.Column("acked_at", TIME, nullable=True),
        sa.Column("acked_by", sa.String(64), nullable=True),
        sa.Column("resolved_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_group_key_last_event_at", "alerts", ["group_key", "last_event_at"])
    op.create_index("ix_alerts_state_next_action_at", "alerts", ["state", "next_action_at"])
    op.create_index("ix_alerts_ack_code", "alerts", ["ack_code"])
    op.create_table(
        "alert_events",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column(
            "alert_id",
            BIG_ID,
            sa.ForeignKey("alerts.id", name="fk_alert_events_alert_id_alerts"),
            nullable=False,
        ),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_events"),
        sa.UniqueConstraint("event_id", name="uq_alert_events_event_id"),
    )
    op.create_index("ix_alert_events_alert_id", "alert_events", ["alert_id"])
    op.create_table(
        "alert_notifications",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column(
            "alert_id",
            BIG_ID,
            sa.ForeignKey("alerts.id", name="fk_alert_notifications_alert_id_alerts"),
            nullable=False,
        ),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("template", sa.String(32), nullable=False),
        sa.Column("reference", sa.String(36), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(16), nullable=True),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("code", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=True),
        sa.Column("sent_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_notifications"),
        sa.UniqueConstraint("reference", name="uq_alert_notifications_reference"),
    )
    op.create_index("ix_alert_notifications_alert_id", "alert_notifications", ["alert_id"])
    op.create_index("ix_alert_notifications_state", "alert_notifications", ["state"])
    op.create_index(
        "ix_alert_notifications_phone_sent_at", "alert_notifications", ["phone", "sent_at"]
    )
    op.create_table(
        "silences",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(32), nullable=False),
        sa.Column("camera", sa.String(64), nullable=True),
        sa.Column("starts_at", TIME, nullable=False),
        sa.Column("ends_at", TIME, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_silences"),
    )
    op.create_index("ix_silences_site_ends_at", "silences", ["site", "ends_at"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_silences_site_ends_at", table_name="silences")
    op.drop_table("silences")
    op.drop_index("ix_alert_notifications_phone_sent_at", table_name="alert_notifications")
    op.drop_index("ix_alert_notifications_state", table_name="alert_notifications")
    op.drop_index("ix_alert_notifications_alert_id", table_name="alert_notifications")
    op.drop_table("alert_notifications")
    op.drop_index("ix_alert_events_alert_id", table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_index("ix_alerts_ack_code", table_name="alerts")
    op.drop_index("ix_alerts_state_next_action_at", table_name="alerts")
    op.drop_index("ix_alerts_group_key_last_event_at", table_name="alerts")
    op.drop_table("alerts")
