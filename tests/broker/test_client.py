"""MqttLink against a real mosquitto: a handler that raises does not end the link; a subscribe()
while the link connects is not left for the next reconnect."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, cast

from broker.client import BrokerAddress, Message, MqttLink
from tests.helpers import MosquittoServer, wait_for


def _link(
    port: int, client_id: str, *, manual_ack: bool = False, clean_session: bool = False
) -> MqttLink:
    return MqttLink(
        client_id,
        BrokerAddress("127.0.0.1", port),
        manual_ack=manual_ack,
        clean_session=clean_session,
    )


def test_a_failing_handler_does_not_stop_receiving_or_publishing(
    mosquitto: MosquittoServer,
) -> None:
    run = uuid.uuid4().hex[:8]
    got: list[bytes] = []

    def handler(message: Message) -> None:
        if message.payload == b"boom":
            raise RuntimeError("handler bug")  # e.g. a full disk under the handler
        got.append(message.payload)

    node = _link(mosquitto.port, f"node-{run}")
    node.subscribe(f"test/{run}/in", handler)
    node.start()
    central = _link(mosquitto.port, f"central-{run}")
    replies: list[bytes] = []
    central.subscribe(f"test/{run}/out", lambda m: replies.append(m.payload))
    central.start()
    try:
        assert node.wait_subscribed(10) and central.wait_subscribed(10)
        for payload in (b"boom", b"one", b"two"):
            assert central.publish(f"test/{run}/in", payload).wait(5)
        assert wait_for(lambda: got == [b"one", b"two"], 10)
        assert node.publish(f"test/{run}/out", b"still here").wait(5)  # PUBACK came back
        assert wait_for(lambda: replies == [b"still here"], 10)
    finally:
        central.stop()
        node.stop()


def test_manual_ack_message_whose_handler_failed_comes_again(mosquitto: MosquittoServer) -> None:
    run = uuid.uuid4().hex[:8]
    topic, client_id = f"test/{run}/jobs", f"worker-{run}"
    first: list[bytes] = []
    worker = _link(mosquitto.port, client_id, manual_ack=True)

    def failing(message: Message) -> None:
        if message.payload == b"job":
            raise RuntimeError("could not store it")
        first.append(message.payload)
        worker.ack(message.mid, message.qos)

    worker.subscribe(topic, failing)
    worker.start()
    sender = _link(mosquitto.port, f"sender-{run}")
    sender.start()
    try:
        assert worker.wait_subscribed(10) and sender.wait_connected(10)
        assert sender.publish(topic, b"job").wait(5)
        assert sender.publish(topic, b"next").wait(5)
        assert wait_for(lambda: first == [b"next"], 10)  # the link lives on
        worker.stop()

        again: list[bytes] = []
        worker = _link(mosquitto.port, client_id, manual_ack=True)  # same persistent session

        def storing(message: Message) -> None:
            again.append(message.payload)
            worker.ack(message.mid, message.qos)

        worker.subscribe(topic, storing)
        worker.start()
        assert wait_for(lambda: again == [b"job"], 10)  # not acknowledged, so not lost
    finally:
        sender.stop()
        worker.stop()
        cleaner = _link(mosquitto.port, client_id, clean_session=True)  # drop the session
        cleaner.start()
        cleaner.wait_connected(5)
        cleaner.stop()


class _ConnectingClient:
    """Stands in for paho's client inside `_on_connect`: records SUBSCRIBEs and runs
    `during_online` when the online status goes out, after the link took its subscriptions and
    before it is `connected`."""

    def __init__(self) -> None:
        self.subscribed: list[str] = []
        self.during_online: Callable[[], None] = lambda: None

    def subscribe(self, topic_filter: str, qos: int) -> tuple[int, int]:
        self.subscribed.append(topic_filter)
        return 0, len(self.subscribed)

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        self.during_online()


def test_subscribe_while_connecting_is_made_on_this_connection() -> None:
    link = MqttLink("race", BrokerAddress(), online=("status", b"online"))  # never connects
    link.subscribe("early", lambda m: None)
    client = _ConnectingClient()
    client.during_online = lambda: link.subscribe("late", lambda m: None)  # sees no connection
    link._on_connect(cast(Any, client), None, None, None, None)
    assert link.connected
    assert client.subscribed == ["early", "late"]  # once each, not at the next reconnect only
