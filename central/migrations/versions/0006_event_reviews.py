"""Review history: every staff decision on an event, not only the latest.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The note crud wrote for a box marked as background (messages.BACKGROUND_NOTE when 0006 was made);
# frozen here so the backfill does not change when the catalogue does.
BACKGROUND_NOTE_PREFIX = "标记为背景"

# Reviews made before this revision survive only as the latest decision on the event row: each
# becomes the first entry of its event's history, so history and event agree from the start.
BACKFILL = sa.text(
    "INSERT INTO event_reviews (event_id, decision, action, reviewer, note, reviewed_at) "
    "SELECT event_id, review_status, "
    "CASE WHEN review_note LIKE :background THEN 'background' ELSE 'review' END, "
    "reviewer, COALESCE(review_note, ''), reviewed_at FROM events "
    "WHERE review_status IN ('confirmed', 'dismissed') "
    "AND reviewer IS NOT NULL AND reviewed_at IS NOT NULL"
).bindparams(background=f"{BACKGROUND_NOTE_PREFIX}%")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "event_reviews",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "event_id",
            sa.String(36),
            sa.ForeignKey("events.event_id", name="fk_event_reviews_event_id_events"),
            nullable=False,
        ),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reviewer", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_reviews"),
    )
    op.create_index(
        "ix_event_reviews_event_id_reviewed_at", "event_reviews", ["event_id", "reviewed_at"]
    )
    op.execute(BACKFILL)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_event_reviews_event_id_reviewed_at", table_name="event_reviews")
    op.drop_table("event_reviews")
