"""Initial schema: events, dead letters, nodes, SMS messages.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("site", sa.String(32), nullable=False),
        sa.Column("node", sa.String(32), nullable=False),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(48), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("species_scientific", sa.String(120), nullable=True),
        sa.Column("species_chinese", sa.String(60), nullable=True),
        sa.Column("species_confidence", sa.Float(), nullable=True),
        sa.Column("captured_at", _ts(), nullable=False),
        sa.Column("captured_until", _ts(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("received_at", _ts(), nullable=False),
        sa.Column("message_zh", sa.Text(), nullable=False),
        sa.Column("message_en", sa.Text(), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("boxes", JSON, nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("review_status", sa.String(16), server_default="unreviewed", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_events_event_id")),
    )
    op.create_index("ix_events_captured_at", "events", ["captured_at"])
    op.create_index("ix_events_kind_captured_at", "events", ["kind", "captured_at"])
    op.create_index("ix_events_site_captured_at", "events", ["site", "captured_at"])
    op.create_index("ix_events_site_node_seq", "events", ["site", "node", "seq"])

    op.create_table(
        "dead_letters",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("received_at", _ts(), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("payload_size", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_index("ix_dead_letters_received_at", "dead_letters", ["received_at"])

    op.create_table(
        "nodes",
        sa.Column("site", sa.String(32), nullable=False),
        sa.Column("node", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=True),
        sa.Column("state_at", _ts(), nullable=True),
        sa.Column("last_seen", _ts(), nullable=True),
        sa.Column("last_heartbeat", JSON, nullable=True),
        sa.Column("last_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("site", "node", name=op.f("pk_nodes")),
    )

    op.create_table(
        "sms_messages",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("sent_at", _ts(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.event_id"], name=op.f("fk_sms_messages_event_id_events")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_messages")),
        sa.UniqueConstraint("event_id", "phone", name="uq_sms_messages_event_id_phone"),
    )
    op.create_index("ix_sms_messages_status", "sms_messages", ["status"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_sms_messages_status", table_name="sms_messages")
    op.drop_table("sms_messages")
    op.drop_table("nodes")
    op.drop_index("ix_dead_letters_received_at", table_name="dead_letters")
    op.drop_table("dead_letters")
    for name in (
        "ix_events_site_node_seq",
        "ix_events_site_captured_at",
        "ix_events_kind_captured_at",
        "ix_events_captured_at",
    ):
        op.drop_index(name, table_name="events")
    op.drop_table("events")
