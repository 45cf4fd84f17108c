"""Case records (异常情况) get their fields, a case may be opened by hand, and patrol logs
(巡护记录) are kept.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(JSONB(), "postgresql")
EMPTY_LIST = sa.text("'[]'")
CASE_TEXTS = (
    "signs_note",
    "human_contact_note",
    "poultry_check",
    "no_sample_reason",
    "measures_note",
    "judgement",
)


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("cases") as batch:
        batch.alter_column("event_id", existing_type=sa.String(36), nullable=True)
        batch.add_column(sa.Column("found_at", TIME, nullable=True))
        batch.add_column(sa.Column("location", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("species_scientific", sa.String(120), nullable=True))
        batch.add_column(sa.Column("species_chinese", sa.String(60), nullable=True))
        batch.add_column(sa.Column("sick_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("dead_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("flock_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("signs", JSON, nullable=False, server_default=EMPTY_LIST))
        batch.add_column(sa.Column("origin", sa.String(16), nullable=False, server_default=""))
        batch.add_column(sa.Column("human_contact", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("poultry_farms_3km", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("samples", JSON, nullable=False, server_default=EMPTY_LIST))
        batch.add_column(sa.Column("measures", JSON, nullable=False, server_default=EMPTY_LIST))
        batch.add_column(sa.Column("photos", JSON, nullable=False, server_default=EMPTY_LIST))
        for name in CASE_TEXTS:
            batch.add_column(sa.Column(name, sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("updated_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("updated_at", TIME, nullable=True))
    # A case so far was always an event's: found when its event was captured.
    op.execute(
        "UPDATE cases SET found_at = (SELECT captured_at FROM events "
        "WHERE events.event_id = cases.event_id), "
        "species_scientific = (SELECT species_scientific FROM events "
        "WHERE events.event_id = cases.event_id), "
        "species_chinese = (SELECT species_chinese FROM events "
        "WHERE events.event_id = cases.event_id)"
    )
    op.execute("UPDATE cases SET found_at = opened_at WHERE found_at IS NULL")
    with op.batch_alter_table("cases") as batch:
        batch.alter_column("found_at", existing_type=TIME, nullable=False)
    op.create_index("ix_cases_found_at", "cases", ["found_at"])
    op.create_table(
        "patrols",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("site", sa.String(32), nullable=False),
        sa.Column("observers", sa.String(200), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("ended_at", TIME, nullable=False),
        sa.Column("weather", sa.String(32), nullable=False, server_default=""),
        sa.Column("sightings", JSON, nullable=False),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.Column("photos", JSON, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_patrols"),
    )
    op.create_index("ix_patrols_site_started_at", "patrols", ["site", "started_at"])


def downgrade() -> None:
    """Revert this revision (cases opened by hand are dropped: they have no event)."""
    op.drop_index("ix_patrols_site_started_at", table_name="patrols")
    op.drop_table("patrols")
    op.drop_index("ix_cases_found_at", table_name="cases")
    op.execute("DELETE FROM cases WHERE event_id IS NULL")
    with op.batch_alter_table("cases") as batch:
        for name in (
            "found_at",
            "location",
            "species_scientific",
            "species_chinese",
            "sick_count",
            "dead_count",
            "flock_count",
            "signs",
            "origin",
            "human_contact",
            "poultry_farms_3km",
            "samples",
            "measures",
            "photos",
            *CASE_TEXTS,
            "updated_by",
            "updated_at",
        ):
            batch.drop_column(name)
        batch.alter_column("event_id", existing_type=sa.String(36), nullable=False)
