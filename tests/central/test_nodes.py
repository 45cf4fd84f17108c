"""Node supervision with a real broker: sequence gaps and resends, offline alerts, two workers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from broker.client import BrokerAddress, MqttLink
from broker.payloads import HeartbeatPayload, NodeState, StatusPayload
from broker.topics import command_topic, event_topic, heartbeat_topic, status_topic
from broker.validate import encode
from central import nodes
from central.app import CentralService
from central.config import CentralConfig
from central.db.models import Event
from edge.outbox import Outbox
from edge.publish import CommandHandler, Publisher
from tests.central.conftest import unique
from tests.factories import make_event
from tests.faults.conftest import Db, wait_ingest_live
from tests.helpers import MosquittoServer, wait_for

Publish = Callable[[str, bytes], None]
SITE, NODE = "changxing", "cx-node-01"


def _service(config: CentralConfig, **monitor: Any) -> CentralService:
    cfg = config.model_copy(
        update={"monitor": config.monitor.model_copy(update={"check_interval_s": 0.1, **monitor})}
    )
    service = CentralService(cfg, serve_http=False)
    service.start()
    return service


def test_gap_is_detected_and_the_node_resends_it(
    tmp_path: Path,
    central_config: CentralConfig,
    mosquitto: MosquittoServer,
    publisher: Publish,
    database_url: str,
) -> None:
    db = Db(database_url)
    central = _service(central_config, gap_grace_s=0.2)
    outbox = Outbox(tmp_path / "outbox.db", retain_acked_s=600)
    link = MqttLink(unique("node-"), BrokerAddress("127.0.0.1", mosquitto.port))
    pub = Publisher(outbox, link)
    handler = CommandHandler(outbox=outbox, publisher=pub)
    link.subscribe(command_topic(SITE, NODE), handler.handle)
    try:
        wait_ingest_live(mosquitto.port, db)
        stored = outbox.add([make_event(site=SITE, node=NODE) for _ in range(10)])
        outbox.remove(range(1, 11))  # acknowledged by the broker, kept for the retention window
        assert outbox.depth() == 0 and outbox.retained() == 10
        link.start()
        assert link.wait_subscribed(10)
        pub.start()
        for ev in stored:  # 4..6 lost somewhere after the broker acknowledged them
            if not 4 <= ev.seq <= 6:
                publisher(event_topic(SITE, NODE), encode(ev))
        assert wait_for(lambda: db.events() == 10, 20), db.events()
        assert central.session_factory is not None
        with central.session_factory() as s:
            assert nodes.missing(session=s) == []
            row = nodes.get_node(session=s, site=SITE, node=NODE)
            assert row is not None and row.contiguous_seq == 10 and row.max_seq == 10
        assert handler.resent == 3 and central.resend_requests >= 1
        assert db.distinct_events() == 10
    finally:
        pub.stop()
        link.stop()
        central.stop()
        db.engine.dispose()


def test_gap_bookkeeping(
    central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> None:
    now = datetime.now(UTC)
    with session_factory.begin() as s:
        nodes.track_sequences(session=s, site=SITE, node=NODE, seqs=[1, 2, 5, 9], now=now)
    with session_factory.begin() as s:
        assert [(g.from_seq, g.to_seq) for g in nodes.missing(session=s)] == [(3, 4), (6, 8)]
        nodes.track_sequences(session=s, site=SITE, node=NODE, seqs=[7, 3, 2], now=now)
    with session_factory.begin() as s:
        assert [(g.from_seq, g.to_seq) for g in nodes.missing(session=s)] == [
            (4, 4),
            (6, 6),
            (8, 8),
        ]
        node = nodes.get_node(session=s, site=SITE, node=NODE)
        assert node is not None and (node.contiguous_seq, node.max_seq) == (3, 9)
        nodes.track_sequences(session=s, site=SITE, node=NODE, seqs=[4, 6, 8], now=now)
    with session_factory() as s:
        node = nodes.get_node(session=s, site=SITE, node=NODE)
        assert nodes.missing(session=s) == [] and node is not None and node.contiguous_seq == 9


def _heartbeat(node: str = NODE) -> bytes:
    return encode(
        HeartbeatPayload(
            site=SITE,
            node=node,
            sent_at=datetime.now(UTC),
            uptime_s=5,
            outbox_depth=0,
            software_version="test",
        )
    )


def _offline_events(db: Db, node: str = NODE) -> list[Any]:
    with db.engine.connect() as conn:
        return list(
            conn.execute(sa.select(Event).where(Event.node == node, Event.rule == "camera_health"))
        )


def test_silent_node_goes_offline_once_per_outage(
    central_config: CentralConfig, publisher: Publish, database_url: str, mosquitto: MosquittoServer
) -> None:
    db = Db(database_url)
    central = _service(central_config, offline_after_s=0.5)
    try:
        wait_ingest_live(mosquitto.port, db)
        publisher(heartbeat_topic(SITE, NODE), _heartbeat())
        assert wait_for(lambda: len(_offline_events(db)) == 1, 10)
        for _ in range(3):  # more supervision rounds over the same outage (the monitor runs too)
            central.check_nodes()
        assert len(_offline_events(db)) == 1  # once per outage
        event = _offline_events(db)[0]
        assert event.kind == "anomaly" and event.severity == "alert" and event.seq == 0
        # an equipment fault, told from wildlife anomalies by its rule and category
        assert (event.rule, event.category) == ("camera_health", "camera")
        assert event.message_zh.startswith(f"节点 {NODE} 已离线超过")
        assert db.node().state == "offline"
        sms = central_config.sms_file
        assert wait_for(lambda: sms.exists() and "摄像机故障" in sms.read_text("utf-8"), 10)
        publisher(heartbeat_topic(SITE, NODE), _heartbeat())  # back: the outage ends
        assert wait_for(lambda: db.node().state == "online", 10)
        assert wait_for(lambda: len(_offline_events(db)) == 2, 10)  # silent again: a new outage
    finally:
        central.stop()
        db.engine.dispose()


def test_last_will_raises_the_outage_at_once(
    central_config: CentralConfig, publisher: Publish, database_url: str, mosquitto: MosquittoServer
) -> None:
    db = Db(database_url)
    central = _service(central_config, offline_after_s=3600)
    node = unique("n")
    try:
        wait_ingest_live(mosquitto.port, db)
        # counted once the probe is: all that came before it (retained statuses) is counted too
        assert wait_for(lambda: central.counters.heartbeats > 0, 10)
        statuses = central.counters.statuses
        will = StatusPayload(site=SITE, node=node, state=NodeState.OFFLINE)  # as the will has it
        publisher(status_topic(SITE, node), encode(will))
        assert wait_for(lambda: len(_offline_events(db, node)) == 1, 10)
        publisher(status_topic(SITE, node), encode(will))  # again (e.g. central restarted)
        assert wait_for(lambda: central.counters.statuses == statuses + 2, 10)  # both stored
        assert len(_offline_events(db, node)) == 1
        assert "已断开连接" in _offline_events(db, node)[0].message_zh
    finally:
        publisher(status_topic(SITE, node), b"")  # clear the retained message
        central.stop()
        db.engine.dispose()


def test_two_workers_share_the_load(
    central_config: CentralConfig, publisher: Publish, database_url: str, mosquitto: MosquittoServer
) -> None:
    db = Db(database_url)
    cfg = central_config.model_copy(
        update={"mqtt": central_config.mqtt.model_copy(update={"workers": 2})}
    )
    central = CentralService(cfg, serve_http=False)
    central.start()
    link = MqttLink(unique("node-"), BrokerAddress("127.0.0.1", mosquitto.port))
    link.start()
    try:
        assert link.wait_connected(10)
        wait_ingest_live(mosquitto.port, db)
        handles = [
            link.publish(event_topic(SITE, NODE), encode(make_event(site=SITE, node=NODE, seq=i)))
            for i in range(1, 2001)
        ]
        assert all(h.wait(30) for h in handles[-50:])
        assert wait_for(lambda: db.events() == 2000, 30), db.events()
        assert wait_for(lambda: sum(i.counters.stored for i in central.ingestors) == 2000, 5)
        assert all(i.counters.stored > 0 for i in central.ingestors), [
            i.counters for i in central.ingestors
        ]
        assert db.distinct_events() == 2000
        assert central.session_factory is not None
        with central.session_factory() as s:
            assert nodes.missing(session=s) == []
    finally:
        link.stop()
        central.stop()
        db.engine.dispose()
