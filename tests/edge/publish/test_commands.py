"""Commands from central over a real mosquitto: one that fails is reported, the node goes on."""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

import pytest

from broker.client import BrokerAddress, Message, MqttLink
from broker.payloads import CommandName, CommandPayload
from broker.topics import TopicKind, command_topic, subscription
from broker.validate import encode
from edge.app import EdgeNode
from edge.ingest.folder import media_item
from tests.edge.conftest import TinyDisk
from tests.factories import node_config
from tests.helpers import MosquittoServer, wait_for


def test_resend_on_a_full_disk_is_reported_and_the_node_keeps_publishing(
    tmp_path: Path,
    images_dir: Path,
    models_dir: Path,
    mosquitto: MosquittoServer,
    tiny_disk: TinyDisk,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    config = node_config(tiny_disk.root / "edge", models_dir, mqtt={"port": mosquitto.port})
    events: list[Message] = []
    central = MqttLink(f"central-{uuid.uuid4().hex[:8]}", BrokerAddress(port=mosquitto.port))
    central.subscribe(subscription(TopicKind.EVENT, node=config.node), events.append)
    central.start()
    node = EdgeNode(config)
    node.start()
    try:
        assert central.wait_subscribed(10) and node.link.wait_subscribed(10)
        first = tmp_path / "dog1.jpg"
        shutil.copy(images_dir / "ct_ecoassist_car_dog.jpg", first)
        assert node.process(media_item(first, "cam1", config.tz)) > 0
        last = node.outbox.last_seq()
        assert wait_for(lambda: len(events) == last and node.outbox.depth() == 0, 30)

        resend = CommandPayload(
            site=config.site, node=config.node, command=CommandName.RESEND, from_seq=1, to_seq=last
        )
        tiny_disk.fill()  # the requeue cannot be written
        assert central.publish(command_topic(config.site, config.node), encode(resend)).wait(5)
        not_done = f"command resend seq 1..{last} from central not carried out"
        # counted before it is logged: wait for both
        assert wait_for(lambda: node.commands.failed == 1 and not_done in caplog.text, 10)
        assert node.commands.resent == 0

        tiny_disk.free()  # the node's link lived through it: the next command works
        assert central.publish(command_topic(config.site, config.node), encode(resend)).wait(5)
        assert wait_for(lambda: node.commands.resent == last, 10)
        assert wait_for(lambda: len(events) == 2 * last and node.outbox.depth() == 0, 30)
    finally:
        node.stop()
        central.stop()
