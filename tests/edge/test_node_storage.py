"""A node whose evidence disk nears its limit warns once, in an event and in its heartbeat."""

from __future__ import annotations

import shutil
from pathlib import Path

from broker.payloads import RuleName
from edge.app import EdgeNode
from edge.config import parse_config
from edge.ingest.folder import media_item
from tests.factories import parse_event
from tests.helpers import MosquittoServer


def test_storage_warning_once(
    tmp_path: Path, images_dir: Path, models_dir: Path, mosquitto: MosquittoServer
) -> None:
    config = parse_config(
        {
            "site": "changxing",
            "node": "store-node",
            "model_store": str(models_dir),
            "data_dir": str(tmp_path / "edge"),
            "mqtt": {"port": mosquitto.port},
            "cameras": [{"id": "cam1"}],
            "evidence_limit_mb": 0.4,
        }
    )
    node = EdgeNode(config)
    node.start()
    try:
        assert node.outbox is not None and node.publisher is not None
        node.publisher.stop()  # keep events in the outbox to read them back
        for i in range(4):
            copy = tmp_path / f"dog{i}.jpg"
            shutil.copy(images_dir / "ct_ecoassist_car_dog.jpg", copy)
            copy.write_bytes(copy.read_bytes() + bytes([i]))  # distinct content, same picture
            node.process(media_item(copy, "cam1", config.tz))
        rules = [parse_event(e.topic, e.payload).rule for e in node.outbox.pending(limit=500)]
        assert rules.count(RuleName.STORAGE_LOW) == 1
        assert node.evidence.near_limit
    finally:
        node.stop()
