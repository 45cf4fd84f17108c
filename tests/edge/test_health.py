"""The heartbeat a running node sends carries its uplink, storage and clock state."""

from __future__ import annotations

import queue
from pathlib import Path

from broker.client import BrokerAddress, Message, MqttLink
from broker.payloads import HeartbeatPayload
from broker.topics import heartbeat_topic
from broker.validate import parse_message
from edge.app import EdgeNode
from tests.factories import node_config
from tests.helpers import MosquittoServer


def test_heartbeat_reports_link_storage_and_clock(
    tmp_path: Path, models_dir: Path, mosquitto: MosquittoServer
) -> None:
    config = node_config(
        tmp_path / "edge",
        models_dir,
        node="hb-node",
        mqtt={"port": mosquitto.port},
        heartbeat_s=0.2,
        storage={"cap_mb": 5000, "low_free_mb": 0},
    )
    archived = tmp_path / "edge" / "archive" / "cam1" / "2026-11-01" / "IMG_0001.jpg"
    archived.parent.mkdir(parents=True)
    archived.write_bytes(b"\xff" * 3_000_000)  # an original archived earlier
    got: queue.Queue[HeartbeatPayload] = queue.Queue()

    def keep(message: Message) -> None:
        _topic, payload = parse_message(message.topic, message.payload)
        if isinstance(payload, HeartbeatPayload):
            got.put(payload)

    watcher = MqttLink("hb-test-watcher", BrokerAddress("127.0.0.1", mosquitto.port))
    watcher.subscribe(heartbeat_topic("changxing", "hb-node"), keep)
    watcher.start()
    node = EdgeNode(config)
    node.start()
    try:
        hb = got.get(timeout=15)
    finally:
        node.stop()
        watcher.stop()
    assert hb.link is not None
    assert hb.link.offline_s == 0 and hb.link.modem_resets == 0 and hb.link.reboots == 0
    assert hb.storage_cap_mb == 5000
    assert hb.storage_used_mb is not None and 3.0 <= hb.storage_used_mb < 3.5  # + the outbox
    assert not hb.storage_near_limit
    # no chronyd runs for this node: the offset is unknown, not zero (tests/edge/test_clock.py
    # reads it from real chrony daemons)
    assert hb.clock_offset_ms is None
