"""Confirming an event may name its species (from the station's catalogue) and its box: kept
on the event and in the history; unknown names, missing boxes and species on a dismissal are
refused (422, Chinese first); migration 0014 adds and removes the columns."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from central import crud
from central.config import CentralConfig
from central.db.migrate import alembic_config, upgrade
from central.db.session import make_engine
from tests.central.conftest import make_event
from tests.central.staff import staff_client

BIRD = {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.3, "category": "bird", "label": "bird"}
EGRET = {"scientific_name": "Egretta garzetta", "chinese_name": "白鹭", "confidence": 0.55}


@pytest.fixture()
def client(
    central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> Iterator[TestClient]:
    with staff_client(central_config, session_factory) as test_client:
        yield test_client


def _store(session_factory: sessionmaker[Session], boxes: int = 2) -> str:
    event = make_event(
        boxes=[{**BIRD, "x": 0.1 + 0.4 * i, "confidence": 0.8} for i in range(boxes)],
        species=EGRET,
        count=boxes,
    )
    with session_factory.begin() as session:
        crud.insert_event(session=session, payload=event, received_at=datetime.now(UTC))
    return str(event.event_id)


def _review(client: TestClient, event_id: str, **body: Any) -> Any:
    return client.post(f"/api/events/{event_id}/review", json=body)


def test_a_reviewer_corrects_the_species_of_a_box(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    event_id = _store(session_factory)
    answer = _review(
        client, event_id, decision="confirmed", species="nipponia  NIPPON", box_index=1
    )
    assert answer.status_code == 200, answer.text
    event = client.get(f"/api/events/{event_id}").json()
    # stored as the catalogue spells it; the node's own suggestion is kept beside it
    assert (event["confirmed_species"], event["confirmed_box"]) == ("Nipponia nippon", 1)
    assert event["species_scientific"] == "Egretta garzetta"
    history = client.get(f"/api/events/{event_id}/reviews").json()["data"]
    assert [(r["species"], r["box_index"], r["reviewer"]) for r in history] == [
        ("Nipponia nippon", 1, "王五")
    ]
    # confirming again without a species: the node's suggestion stands again (latest decision)
    _review(client, event_id, decision="confirmed", note="复核")
    event = client.get(f"/api/events/{event_id}").json()
    assert (event["confirmed_species"], event["confirmed_box"]) == (None, None)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"decision": "confirmed", "species": "Corvus imaginarius"}, "物种名录中没有"),
        (
            {"decision": "confirmed", "species": "Nipponia nippon", "box_index": 2},
            "该事件没有这个检测框",
        ),
        ({"decision": "dismissed", "species": "Nipponia nippon"}, "只有确认时才能指定物种"),
        # a box without a species names nothing: refused, not stored as a confirmation
        ({"decision": "confirmed", "box_index": 1}, "指定检测框时须同时指定物种"),
    ],
)
def test_a_species_outside_the_catalogue_or_the_event_is_refused(
    client: TestClient,
    session_factory: sessionmaker[Session],
    body: dict[str, Any],
    expected: str,
) -> None:
    event_id = _store(session_factory)
    answer = _review(client, event_id, **body)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail.startswith(expected) and " / " in detail  # Chinese first, English beside
    if "species" in body and "imaginarius" in body["species"]:
        assert "Corvus imaginarius" in detail
    event = client.get(f"/api/events/{event_id}").json()
    assert event["review_status"] == "unreviewed"
    assert client.get(f"/api/events/{event_id}/reviews").json()["count"] == 0


def test_migration_0014_takes_the_species_columns_away_and_brings_them_back(
    database_url: str,
) -> None:
    """Downgrade drops the named species (the events stay); upgrade adds the columns empty."""
    upgrade(database_url)
    engine = make_engine(database_url)
    event = make_event(species=EGRET, boxes=[{**BIRD, "confidence": 0.8}])
    event_id = str(event.event_id)
    try:
        with sessionmaker(bind=engine).begin() as session:
            crud.insert_event(session=session, payload=event, received_at=datetime.now(UTC))
            crud.review_event(
                session=session,
                event_id=event_id,
                decision="confirmed",
                reviewer="王五",
                note="",
                at=datetime.now(UTC),
                species="Nipponia nippon",
                box_index=0,
            )
        command.downgrade(alembic_config(database_url), "0013")
        engine.dispose()
        inspector = sa.inspect(engine)
        assert not {"confirmed_species", "confirmed_box"} & {
            c["name"] for c in inspector.get_columns("events")
        }
        assert not {"species", "box_index"} & {
            c["name"] for c in inspector.get_columns("event_reviews")
        }
        upgrade(database_url)
        engine.dispose()
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT review_status, confirmed_species, confirmed_box FROM events "
                    "WHERE event_id = :e"
                ),
                {"e": event_id},
            ).one()
            history = conn.execute(
                sa.text("SELECT species, box_index FROM event_reviews WHERE event_id = :e"),
                {"e": event_id},
            ).all()
        assert tuple(row) == ("confirmed", None, None)
        assert [tuple(r) for r in history] == [(None, None)]
    finally:
        engine.dispose()
