"""The Alembic migrations create exactly the schema the ORM models describe."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from central.db.migrate import alembic_config, upgrade
from central.db.models import Base
from central.db.session import make_engine


def test_upgrade_creates_schema_matching_models(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # a second run is a no-op
    engine = make_engine(database_url)
    try:
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names())
        assert {
            "events",
            "dead_letters",
            "nodes",
            "seq_gaps",
            "sms_messages",
            "alembic_version",
        } <= tables
        index_names = {ix["name"] for ix in inspector.get_indexes("events")}
        assert {"ix_events_captured_at", "ix_events_site_captured_at"} <= index_names
        with engine.connect() as conn:
            head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
            assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == head
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == []
    finally:
        engine.dispose()
