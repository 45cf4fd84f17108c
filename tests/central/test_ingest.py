"""Ingest through the real broker into the real database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import MAX_PAYLOAD_BYTES, HeartbeatPayload, StatusPayload
from broker.topics import event_topic, heartbeat_topic, status_topic
from broker.validate import encode
from central.db.models import DeadLetter, Event, Node
from tests.central.conftest import IngestorFactory, make_event
from tests.helpers import wait_for

Publish = Callable[[str, bytes], None]
TOPIC = event_topic("changxing", "cx-01")


def _count(session_factory: sessionmaker[Session], model: type[object]) -> int:
    with session_factory() as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def test_event_is_stored(
    start_ingestor: IngestorFactory,
    publisher: Publish,
    session_factory: sessionmaker[Session],
) -> None:
    ingestor = start_ingestor()
    event = make_event(
        species={"scientific_name": "Egretta garzetta", "chinese_name": "白鹭", "confidence": 0.8},
        count=3,
        boxes=[
            {
                "x": 0.1,
                "y": 0.1,
                "w": 0.2,
                "h": 0.2,
                "category": "bird",
                "label": "bird",
                "confidence": 0.9,
            }
        ],
        message_zh="白鹭 3 只",
    )
    publisher(TOPIC, encode(event))
    assert wait_for(lambda: ingestor.counters.stored == 1, 10)
    with session_factory() as s:
        row = s.scalars(sa.select(Event)).one()
    assert row.event_id == str(event.event_id)
    assert row.species_chinese == "白鹭"
    assert row.count == 3
    assert row.captured_at == event.captured_at
    assert row.captured_at.tzinfo is not None
    assert row.boxes[0]["label"] == "bird"
    assert row.payload["message_zh"] == "白鹭 3 只"
    assert row.review_status == "unreviewed"


def test_same_event_three_times_is_stored_once(
    start_ingestor: IngestorFactory,
    publisher: Publish,
    session_factory: sessionmaker[Session],
) -> None:
    ingestor = start_ingestor()
    payload = encode(make_event())
    for _ in range(3):
        publisher(TOPIC, payload)
    assert wait_for(lambda: ingestor.counters.stored + ingestor.counters.duplicates == 3, 10)
    assert ingestor.counters.stored == 1
    assert ingestor.counters.duplicates == 2
    assert _count(session_factory, Event) == 1


def test_malformed_messages_are_dead_lettered_and_good_ones_still_stored(
    start_ingestor: IngestorFactory,
    publisher: Publish,
    session_factory: sessionmaker[Session],
) -> None:
    ingestor = start_ingestor()
    good = json.loads(encode(make_event()))
    bad_version = {**good, "schema_version": 99}
    wrong_types = {**good, "seq": "one", "confidence": "high"}
    other_site = json.loads(encode(make_event(site="xiazhuhu")))
    oversize = {**good, "message_en": "x" * (MAX_PAYLOAD_BYTES + 10)}
    bad = [
        b"{not json",
        json.dumps(bad_version).encode(),
        json.dumps(wrong_types).encode(),
        json.dumps(other_site).encode(),
        json.dumps(oversize).encode(),
        b"\x00\xff binary",
    ]
    for payload in bad:
        publisher(TOPIC, payload)
    last = make_event()
    publisher(TOPIC, encode(last))
    assert wait_for(lambda: ingestor.counters.stored == 1, 10)
    assert wait_for(lambda: ingestor.counters.dead_lettered == len(bad), 10)
    with session_factory() as s:
        letters = s.scalars(sa.select(DeadLetter).order_by(DeadLetter.id)).all()
        stored = s.scalars(sa.select(Event.event_id)).all()
    assert stored == [str(last.event_id)]
    reasons = [d.reason for d in letters]
    assert "not UTF-8 JSON" in reasons[0]
    assert "schema_version" in reasons[1]
    assert "seq" in reasons[2]
    assert "xiazhuhu" in reasons[3]
    assert "exceeds" in reasons[4]
    assert all(d.topic == TOPIC for d in letters)
    assert letters[4].payload_size > MAX_PAYLOAD_BYTES
    assert len(letters[4].payload) <= 64 * 1024
    assert "\x00" not in letters[5].payload


def test_heartbeat_and_status_update_nodes(
    start_ingestor: IngestorFactory,
    publisher: Publish,
    session_factory: sessionmaker[Session],
) -> None:
    ingestor = start_ingestor()
    now = datetime.now(UTC)
    for last_seq in (7, 5):  # last_seq never goes backwards
        beat = HeartbeatPayload(
            site="xiazhuhu",
            node="xz-01",
            sent_at=now,
            uptime_s=10,
            outbox_depth=0,
            last_seq=last_seq,
            software_version="0.1.0",
        )
        publisher(heartbeat_topic("xiazhuhu", "xz-01"), encode(beat))
    status = StatusPayload(site="xiazhuhu", node="xz-01", state="offline", at=now)
    publisher(status_topic("xiazhuhu", "xz-01"), encode(status))
    assert wait_for(lambda: ingestor.counters.statuses >= 1, 10)
    assert wait_for(lambda: ingestor.counters.heartbeats >= 3, 10)  # probe + 2
    with session_factory() as s:
        node = s.get_one(Node, ("xiazhuhu", "xz-01"))
    assert node.state == "offline"
    assert node.last_seq == 7
    assert node.last_heartbeat is not None and node.last_heartbeat["uptime_s"] == 10


def test_database_outage_retries_and_never_acks_before_commit(
    start_ingestor: IngestorFactory,
    publisher: Publish,
    session_factory: sessionmaker[Session],
    engine: sa.Engine,
) -> None:
    ingestor = start_ingestor()
    with engine.begin() as conn:  # the events table "disappears": every batch fails
        conn.execute(sa.text("ALTER TABLE events RENAME TO events_away"))
    event = make_event(event_id=uuid.uuid4())
    publisher(TOPIC, encode(event))
    assert wait_for(lambda: ingestor.counters.db_errors >= 2, 10), "no retry happened"
    assert ingestor.counters.stored == 0
    ingestor.stop()  # gives up without acknowledging
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE events_away RENAME TO events"))
    restarted = start_ingestor(probe=False)  # same client id: the broker redelivers
    assert wait_for(lambda: restarted.counters.stored == 1, 15)
    with session_factory() as s:
        assert s.scalars(sa.select(Event.event_id)).all() == [str(event.event_id)]


def test_outage_while_running_recovers_without_restart(
    start_ingestor: IngestorFactory,
    publisher: Publish,
    session_factory: sessionmaker[Session],
    engine: sa.Engine,
) -> None:
    ingestor = start_ingestor()
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE events RENAME TO events_away"))
    publisher(TOPIC, encode(make_event()))
    assert wait_for(lambda: ingestor.counters.db_errors >= 1, 10)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE events_away RENAME TO events"))
    assert wait_for(lambda: ingestor.counters.stored == 1, 10)
    assert _count(session_factory, Event) == 1
