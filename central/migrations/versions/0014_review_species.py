"""A reviewer may name the species on confirming an event, and which box it is: kept on the
event (the latest decision) and in its review history; the station's gallery learns from them.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column("events", sa.Column("confirmed_species", sa.String(120), nullable=True))
    op.add_column("events", sa.Column("confirmed_box", sa.Integer(), nullable=True))
    op.add_column("event_reviews", sa.Column("species", sa.String(120), nullable=True))
    op.add_column("event_reviews", sa.Column("box_index", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch would copy `events`, and with
    # foreign keys on, dropping the old table is refused while reviews and evidence point to it.
    for table, columns in (
        ("event_reviews", ("box_index", "species")),
        ("events", ("confirmed_box", "confirmed_species")),
    ):
        for column in columns:
            op.drop_column(table, column)
