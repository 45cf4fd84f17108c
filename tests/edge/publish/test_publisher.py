"""The publisher drains the outbox to a real mosquitto; entries leave only once acknowledged."""

from __future__ import annotations

import uuid
from pathlib import Path

from broker.client import BrokerAddress, Message, MqttLink
from broker.topics import TopicKind, subscription
from edge.outbox import Outbox
from edge.publish import Publisher
from tests.factories import make_event, parse_event
from tests.helpers import MosquittoServer, wait_for


def _link(port: int, prefix: str) -> MqttLink:
    link = MqttLink(f"{prefix}-{uuid.uuid4().hex[:8]}", BrokerAddress("127.0.0.1", port))
    link.start()
    assert link.wait_connected(10)
    return link


def test_drains_in_order_and_empties_outbox(tmp_path: Path, mosquitto: MosquittoServer) -> None:
    got: list[Message] = []
    sub = _link(mosquitto.port, "sub")
    sub.subscribe(subscription(TopicKind.EVENT), got.append)
    assert sub.wait_subscribed(10)  # SUBACK: the broker routes the first event to it
    box = Outbox(tmp_path / "outbox.db")
    box.add([make_event() for _ in range(250)])
    pub_link = _link(mosquitto.port, "node")
    pub = Publisher(box, pub_link)
    pub.start()
    assert wait_for(lambda: pub.drained() and len(got) >= 250, 30)
    seqs = [parse_event(m.topic, m.payload).seq for m in got]
    assert seqs == list(range(1, 251))
    assert box.depth() == 0 and pub.published == 250
    pub.stop()
    pub_link.stop()
    sub.stop()


def test_nothing_leaves_the_outbox_while_the_broker_is_down(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    box = Outbox(tmp_path / "outbox.db")
    link = _link(mosquitto.port, "node")
    pub = Publisher(box, link)  # stepped by hand while the broker is down, started after
    mosquitto.stop()
    try:
        assert wait_for(lambda: not link.connected, 10)
        box.add([make_event() for _ in range(20)])
        for _ in range(3):
            assert not pub.step()  # no work done: nothing handed over, nothing acknowledged
        assert box.depth() == 20 and pub.published == 0  # kept while nobody acknowledges
    finally:
        mosquitto.start()
    pub.start()
    assert wait_for(pub.drained, 30)
    assert pub.published == 20
    pub.stop()
    link.stop()
