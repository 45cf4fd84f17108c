"""The Alembic migrations create exactly the schema the ORM models describe."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from central import crud, messages
from central.db.migrate import alembic_config, upgrade
from central.db.models import Base, Case, Event
from central.db.session import make_engine, make_session_factory
from tests.central.conftest import make_event


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
            "event_reviews",
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


def test_review_history_starts_with_the_reviews_made_before_it(database_url: str) -> None:
    """0006 turns each event's latest decision into the first entry of its history; downgrade
    drops the history and leaves the events as they were."""
    upgrade(database_url, "0005")
    engine = make_engine(database_url)
    at = datetime(2026, 11, 22, 1, 30, tzinfo=UTC)
    events = [make_event(seq=n, kind="anomaly", rule="free_roaming_dog") for n in (1, 2, 3)]
    ids = [str(e.event_id) for e in events]
    reviews = [
        ("confirmed", "张三", "已现场核实"),
        ("dismissed", "李四", messages.BACKGROUND_NOTE.format(note="树桩")),
    ]
    try:
        with make_session_factory(engine).begin() as session:
            for event in events:
                crud.insert_event(session=session, payload=event, received_at=at)
            for event_id, (status, reviewer, note) in zip(ids, reviews, strict=False):
                session.execute(
                    sa.update(Event)
                    .where(Event.event_id == event_id)
                    .values(
                        review_status=status, reviewer=reviewer, review_note=note, reviewed_at=at
                    )
                )
        upgrade(database_url)
        query = sa.text(
            "SELECT event_id, decision, action, reviewer, note FROM event_reviews ORDER BY id"
        )
        with engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(query)]
        assert sorted(rows) == sorted(
            [
                (ids[0], "confirmed", "review", "张三", "已现场核实"),
                (ids[1], "dismissed", "background", "李四", reviews[1][2]),
            ]
        )
        with make_session_factory(engine)() as session:
            (first,) = crud.list_reviews(session=session, event_id=ids[0])
            assert first.reviewed_at == at  # aware UTC, as every other column

        engine.dispose()
        command.downgrade(alembic_config(database_url), "0005")
        assert "event_reviews" not in sa.inspect(engine).get_table_names()
        with engine.connect() as conn:
            kept = conn.scalar(sa.text("SELECT count(*) FROM events WHERE reviewer IS NOT NULL"))
        assert kept == 2
        upgrade(database_url)  # and up again
    finally:
        engine.dispose()


def test_received_at_index_upgrades_and_downgrades(database_url: str) -> None:
    """0007 adds the index the late additions of a report are looked up by; downgrade drops it."""
    upgrade(database_url)
    engine = make_engine(database_url)

    def indexes() -> set[str]:
        return {ix["name"] for ix in sa.inspect(engine).get_indexes("events") if ix["name"]}

    try:
        assert "ix_events_received_at" in indexes()
        command.downgrade(alembic_config(database_url), "0006")
        engine.dispose()
        assert "ix_events_received_at" not in indexes()
        assert "ix_events_captured_at" in indexes()
        upgrade(database_url)  # and up again
        engine.dispose()
        assert "ix_events_received_at" in indexes()
    finally:
        engine.dispose()


def test_cases_opened_before_0013_are_found_when_their_event_was_captured(
    database_url: str,
) -> None:
    """0013 gives each existing case the capture time and species of its event; downgrade drops
    the cases opened by hand (they have no event) and keeps the others."""
    upgrade(database_url, "0012")
    engine = make_engine(database_url)
    captured = datetime(2026, 11, 22, 1, 30, tzinfo=UTC)
    egret = {"scientific_name": "Egretta garzetta", "chinese_name": "白鹭", "confidence": 0.9}
    event = make_event(kind="anomaly", rule="motionless_bird", captured_at=captured, species=egret)
    try:
        with make_session_factory(engine).begin() as session:
            crud.insert_event(session=session, payload=event, received_at=captured)
            session.execute(
                sa.text(
                    "INSERT INTO cases (site, event_id, opened_by, opened_at, status) "
                    "VALUES ('changxing', :e, 'wang', :at, 'open')"
                ),
                {"e": str(event.event_id), "at": datetime(2026, 11, 22, 3, tzinfo=UTC)},
            )
        upgrade(database_url)
        with make_session_factory(engine).begin() as session:
            case = session.scalars(sa.select(Case)).one()
            assert case.found_at == captured
            assert (case.species_chinese, case.signs, case.samples) == ("白鹭", [], [])
            session.add(
                Case(
                    site="changxing",
                    event_id=None,
                    opened_by="li",
                    opened_at=captured,
                    found_at=captured,
                )
            )
        command.downgrade(alembic_config(database_url), "0012")
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT event_id FROM cases")).all()
        assert [r[0] for r in rows] == [str(event.event_id)]
    finally:
        engine.dispose()
