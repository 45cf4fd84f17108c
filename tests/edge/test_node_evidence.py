"""A motionless bird's event carries the frame where the bird was first seen and the last one."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from broker.payloads import EventPayload
from broker.validate import parse_message
from edge.app import EdgeNode
from edge.config import parse_config
from edge.ingest.folder import media_item
from tests.factories import stamp_copy
from tests.helpers import MosquittoServer

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 21, 9, 0, tzinfo=SH)


def test_still_bird_event_has_start_and_end_frames(
    tmp_path: Path, images_dir: Path, models_dir: Path, mosquitto: MosquittoServer
) -> None:
    config = parse_config(
        {
            "site": "changxing",
            "node": "still-node",
            "model_store": str(models_dir),
            "data_dir": str(tmp_path / "edge"),
            "mqtt": {"port": mosquitto.port},
            "cameras": [{"id": "cam1"}],
        }
    )
    frames = [
        stamp_copy(
            images_dir / "ct_ena24_4330.jpg", tmp_path / "c_0855.jpg", START - timedelta(minutes=5)
        )
    ]
    for m in range(0, 12, 2):
        at = START + timedelta(minutes=m)
        frames.append(
            stamp_copy(images_dir / "bird_coral_bird.jpg", tmp_path / f"c_{at:%H%M}.jpg", at)
        )
    node = EdgeNode(config)
    node.start()
    try:
        assert node.outbox is not None and node.publisher is not None
        node.publisher.stop()  # keep the events in the outbox to read them back
        for path in frames:
            node.process(media_item(path, "cam1", config.tz))
        events = [parse_message(e.topic, e.payload)[1] for e in node.outbox.pending(limit=500)]
    finally:
        node.stop()
    (still,) = [e for e in events if isinstance(e, EventPayload) and e.rule == "motionless_bird"]
    names = [ref.name for ref in still.evidence]
    assert names[0].startswith("c_0900_")  # where the bird was first seen
    assert any(n.startswith("c_0910_") and "_crop" not in n for n in names)  # and the end
    assert (tmp_path / "edge" / "evidence" / "cam1" / "2026-11-21" / names[0]).exists()
