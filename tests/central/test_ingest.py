"""Ingest through the real broker into the real database."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import MAX_PAYLOAD_BYTES, EventPayload, HeartbeatPayload, StatusPayload
from broker.topics import event_topic, heartbeat_topic, status_topic
from broker.validate import encode
from central.db.models import DeadLetter, Event, Node
from central.db.session import database_unavailable
from central.ingest import Ingestor
from central.surveillance import evaluate_site
from surveillance.settings import MortalityClusterSettings
from tests.central.conftest import IngestorFactory, make_event, three_deaths
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


@contextmanager
def _events_table_away(engine: sa.Engine) -> Iterator[None]:
    """A database outage for ingest: the events table "disappears" (renamed), so every batch
    fails, until the block ends."""
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE events RENAME TO events_away"))
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE events_away RENAME TO events"))


def test_database_outage_retries_and_never_acks_before_commit(
    start_ingestor: IngestorFactory,
    publisher: Publish,
    session_factory: sessionmaker[Session],
    engine: sa.Engine,
) -> None:
    ingestor = start_ingestor()
    event = make_event(event_id=uuid.uuid4())
    with _events_table_away(engine):
        publisher(TOPIC, encode(event))
        assert wait_for(lambda: ingestor.counters.db_errors >= 2, 10), "no retry happened"
        assert ingestor.counters.stored == 0
        ingestor.stop()  # gives up without acknowledging
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
    with _events_table_away(engine):
        publisher(TOPIC, encode(make_event()))
        assert wait_for(lambda: ingestor.counters.db_errors >= 1, 10)
    assert wait_for(lambda: ingestor.counters.stored == 1, 10)
    assert _count(session_factory, Event) == 1


def _letters(session_factory: sessionmaker[Session]) -> list[DeadLetter]:
    with session_factory() as s:
        return list(s.scalars(sa.select(DeadLetter).order_by(DeadLetter.id)))


def test_unstorable_values_are_dead_lettered_and_the_rest_stored(
    start_ingestor: IngestorFactory,
    publisher: Publish,
    session_factory: sessionmaker[Session],
) -> None:
    """A year-1 capture time overflowed when stored and was retried for ever; a last_seq of 2**64
    overflowed SQLite's INTEGER and left its batch unacked. Both now fail validation."""
    ingestor = start_ingestor()
    good = [make_event(seq=n) for n in (1, 2, 3)]
    year_one = json.loads(encode(make_event(seq=4)))
    year_one["captured_at"] = "0001-01-01T00:00:00+08:00"
    beat = json.loads(
        encode(
            HeartbeatPayload(
                site="changxing",
                node="cx-01",
                sent_at=datetime.now(UTC),
                uptime_s=1,
                outbox_depth=0,
                software_version="test",
            )
        )
    )
    beat["last_seq"] = 2**64
    publisher(TOPIC, encode(good[0]))
    publisher(TOPIC, json.dumps(year_one).encode())
    publisher(TOPIC, encode(good[1]))
    publisher(heartbeat_topic("changxing", "cx-01"), json.dumps(beat).encode())
    publisher(TOPIC, encode(good[2]))
    assert wait_for(lambda: ingestor.counters.stored == 3, 10), ingestor.counters
    assert wait_for(lambda: ingestor.counters.dead_lettered == 2, 10), ingestor.counters
    reasons = [d.reason for d in _letters(session_factory)]
    assert reasons[0].startswith("captured_at") and reasons[1].startswith("last_seq"), reasons
    later = make_event(seq=5)  # and ingest goes on
    publisher(TOPIC, encode(later))
    assert wait_for(lambda: ingestor.counters.stored == 4, 10)
    with session_factory() as s:
        stored = set(s.scalars(sa.select(Event.event_id)))
    assert stored == {str(e.event_id) for e in [*good, later]}
    assert ingestor.counters.db_errors == 0


def _refuse_camera(engine: sa.Engine, camera: str) -> None:
    """Make the database refuse events of one camera with an error of its own.

    A minimal injected fault: the payload schema now rejects every value known to break a
    column, so a trigger stands in for whatever else a database may refuse one row for. On
    PostgreSQL it raises P0001 (an InternalError to SQLAlchemy, neither integrity nor data),
    on SQLite RAISE(ABORT) (an IntegrityError).
    """
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                sa.text(
                    "CREATE FUNCTION refuse_camera() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    f"BEGIN IF NEW.camera = '{camera}' THEN "
                    "RAISE EXCEPTION 'camera refused by a test trigger'; END IF; "
                    "RETURN NEW; END $$"
                )
            )
            conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse_camera BEFORE INSERT ON events "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_camera()"
                )
            )
        else:
            conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse_camera BEFORE INSERT ON events "
                    f"WHEN NEW.camera = '{camera}' "
                    "BEGIN SELECT RAISE(ABORT, 'camera refused by a test trigger'); END"
                )
            )


def test_a_row_the_database_refuses_is_dead_lettered_not_retried(
    start_ingestor: IngestorFactory,
    publisher: Publish,
    session_factory: sessionmaker[Session],
    engine: sa.Engine,
) -> None:
    ingestor = start_ingestor()
    _refuse_camera(engine, "bad-cam")
    refused = make_event(seq=2, camera="bad-cam")
    good = [make_event(seq=1), make_event(seq=3)]
    for ev in (good[0], refused, good[1]):
        publisher(TOPIC, encode(ev))
    assert wait_for(lambda: ingestor.counters.dead_lettered == 1, 10), ingestor.counters
    assert wait_for(lambda: ingestor.counters.stored == 2, 10), ingestor.counters
    (letter,) = _letters(session_factory)
    assert "camera refused by a test trigger" in letter.reason
    assert json.loads(letter.payload)["event_id"] == str(refused.event_id)
    assert ingestor.counters.db_errors == 0  # not mistaken for an outage
    with session_factory() as s:
        assert set(s.scalars(sa.select(Event.event_id))) == {str(e.event_id) for e in good}
        node = s.get_one(Node, ("changxing", "cx-01"))
    assert (node.contiguous_seq, node.max_seq) == (1, 3)  # seq 2 stays missing (asked again)


def test_fallback_one_by_one_still_raises_the_cross_node_cluster(
    start_ingestor: IngestorFactory,
    publisher: Publish,
    session_factory: sessionmaker[Session],
    engine: sa.Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three deaths from two nodes in the same batch as a message the database refuses: the
    batch is stored one by one, and the cluster is raised all the same."""
    clusters = MortalityClusterSettings()
    ingestor = start_ingestor(clusters=clusters, batch_wait_s=1.0)
    _refuse_camera(engine, "bad-cam")
    ingestor.stop()  # the messages queue up in the broker for the persistent session ...
    for death in three_deaths():
        publisher(event_topic(death.site, death.node), encode(death))
    publisher(TOPIC, encode(make_event(seq=3, camera="bad-cam")))
    caplog.set_level(logging.WARNING, logger="central.ingest")
    restarted = start_ingestor(clusters=clusters, batch_wait_s=1.0, probe=False)  # ... one batch
    assert wait_for(lambda: restarted.counters.dead_lettered == 1, 15), restarted.counters
    assert "storing one by one" in caplog.text  # the fallback really ran
    with session_factory() as s:
        (cluster,) = s.scalars(sa.select(Event).where(Event.rule == "mortality_cluster")).all()
    assert (cluster.node, cluster.count, cluster.severity) == ("central", 3, "critical")
    assert restarted.counters.stored == 4  # three deaths and the cluster


def test_outage_is_told_from_a_refused_statement(
    session_factory: sessionmaker[Session], engine: sa.Engine
) -> None:
    """Only an unusable database is an outage (wait and retry); anything a statement's values
    cause is blamed on the message (dead-letter it), with real errors from both databases."""
    unreachable = (
        "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2"
        if engine.dialect.name == "postgresql"
        else "sqlite:////nonexistent-dir/none.db"
    )
    with pytest.raises(sa.exc.DBAPIError) as down:
        sa.create_engine(unreachable).connect()
    assert database_unavailable(down.value)
    with pytest.raises(sa.exc.DBAPIError) as no_table, session_factory() as s:
        s.execute(sa.text("SELECT 1 FROM events_away"))  # schema not what the code expects
    assert database_unavailable(no_table.value)
    with pytest.raises(sa.exc.StatementError) as naive, session_factory.begin() as s:
        row = Event(**{**_event_row(), "captured_at": datetime(2026, 1, 1)})  # no zone
        s.add(row)
        s.flush()
    assert not database_unavailable(naive.value)
    with pytest.raises(sa.exc.IntegrityError) as twice, session_factory.begin() as s:
        s.add_all([Event(**_event_row(event_id="same")), Event(**_event_row(event_id="same"))])
        s.flush()
    assert not database_unavailable(twice.value)
    assert not database_unavailable(OverflowError("Python int too large to convert"))


def _event_row(**over: object) -> dict[str, object]:
    from central import crud

    row = crud.event_row(make_event(), received_at=datetime.now(UTC))
    row.update(over)
    return row


def _deaths_batch(
    start_ingestor: IngestorFactory, publisher: Publish, **kwargs: object
) -> Ingestor:
    """Publish three_deaths() while central is away, then start it: they arrive as one batch."""
    ingestor = start_ingestor(**kwargs)
    ingestor.stop()  # the messages queue up in the broker for the persistent session ...
    for death in three_deaths():
        publisher(event_topic(death.site, death.node), encode(death))
    return start_ingestor(**kwargs, probe=False)  # ... and come as one batch


def test_a_batch_evaluates_each_site_once(
    start_ingestor: IngestorFactory,
    publisher: Publish,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three deaths at one site in one batch: the site's clusters are evaluated once, over all
    three death times, and the cross-node cluster is raised."""
    calls: list[tuple[str, list[datetime]]] = []

    def counted(session: Session, *, site: str, at: list[datetime], **kw: Any) -> Any:
        calls.append((site, sorted(at)))
        return evaluate_site(session, site=site, at=at, **kw)

    monkeypatch.setattr("central.ingest.evaluate_site", counted)
    ingestor = _deaths_batch(
        start_ingestor, publisher, clusters=MortalityClusterSettings(), batch_wait_s=1.0
    )
    assert wait_for(lambda: ingestor.counters.stored == 4, 15), ingestor.counters
    deaths = sorted(d.captured_until for d in three_deaths() if d.captured_until)
    assert calls == [("changxing", deaths)]
    with session_factory() as s:
        (cluster,) = s.scalars(sa.select(Event).where(Event.rule == "mortality_cluster")).all()
    assert (cluster.node, cluster.count) == ("central", 3)


def test_a_bug_of_ours_leaves_the_batch_unacked_not_dead_lettered(
    start_ingestor: IngestorFactory,
    publisher: Publish,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in our own code is no fault of the messages: nothing of the batch is dead-lettered
    or acknowledged, and once the bug is gone the broker delivers the batch again and every
    event is stored (with its cluster)."""

    def broken(*_args: object, **_kwargs: object) -> list[EventPayload]:
        raise RuntimeError("a bug in evaluate_site")

    # An injected fault standing in for any bug of ours after storing (evaluate_site,
    # dispatcher.enqueue, nodes.*); no input makes the real code raise one.
    monkeypatch.setattr("central.ingest.evaluate_site", broken)
    caplog.set_level(logging.ERROR, logger="central.ingest")
    clusters = MortalityClusterSettings()
    ingestor = _deaths_batch(start_ingestor, publisher, clusters=clusters)

    def left_unacked() -> int:  # messages in the batches the worker gave up on
        found = (re.search(r"batch of (\d+); left unacked", r.getMessage()) for r in caplog.records)
        return sum(int(m.group(1)) for m in found if m)

    assert wait_for(lambda: left_unacked() == 3, 15), caplog.text
    assert (ingestor.counters.stored, ingestor.counters.dead_lettered) == (0, 0)
    assert (_count(session_factory, Event), _count(session_factory, DeadLetter)) == (0, 0)
    ingestor.stop()
    monkeypatch.undo()  # the bug is fixed
    restarted = start_ingestor(clusters=clusters, probe=False)  # the broker redelivers
    assert wait_for(lambda: restarted.counters.stored == 4, 15), restarted.counters
    assert restarted.counters.dead_lettered == 0
    with session_factory() as s:
        rules = sorted(str(r) for r in s.scalars(sa.select(Event.rule)))
    assert rules == ["mortality_cluster", *["motionless_bird"] * 3]


def test_dead_letter_text_is_storable(session_factory: sessionmaker[Session]) -> None:
    """A NUL in a dead letter's reason (a refused value quoted back) or payload is replaced:
    PostgreSQL text columns refuse it, and a dead letter must always be storable."""
    from central import crud

    with session_factory.begin() as s:
        crud.insert_dead_letter(
            session=s,
            topic=TOPIC,
            payload=b'{"camera": "a\x00b"}',
            reason="camera: refused value 'a\x00b'",
            received_at=datetime.now(UTC),
        )
    (letter,) = _letters(session_factory)
    assert letter.reason == "camera: refused value 'a\ufffdb'"
    assert letter.payload == '{"camera": "a\ufffdb"}'
