"""Index events by when central received them: a report's late additions are looked up by it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_index("ix_events_received_at", "events", ["received_at"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_events_received_at", table_name="events")
