"""Builders of contract objects for tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from PIL import Image

from broker.payloads import EventPayload
from broker.validate import parse_message
from edge.config import NodeConfig, parse_config

SHANGHAI = ZoneInfo("Asia/Shanghai")
EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 36867


def make_event(**over: Any) -> EventPayload:
    """A valid observation event (override any field)."""
    when = over.pop("captured_at", datetime(2026, 11, 22, 9, 30, tzinfo=SHANGHAI))
    data: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "seq": 1,
        "site": "changxing",
        "node": "cx-node-01",
        "camera": "cx-cam-01",
        "kind": "observation",
        "category": "bird",
        "captured_at": when,
        "created_at": when + timedelta(seconds=2),
        "count": 2,
        "confidence": 0.8,
        "message_zh": "cx-cam-01 拍到2个鸟类",
    }
    data.update(over)
    return EventPayload.model_validate(data)


def parse_event(topic: str, payload: bytes) -> EventPayload:
    """An event message read back through the contract (parse_message); it must be an event."""
    _, event = parse_message(topic, payload)
    assert isinstance(event, EventPayload), event
    return event


def node_config(data_dir: Path, models_dir: Path, **over: Any) -> NodeConfig:
    """A validated node config at changxing with one camera `cam1`; `over` replaces any key."""
    data: dict[str, Any] = {
        "site": "changxing",
        "node": "n1",
        "model_store": str(models_dir),
        "data_dir": str(data_dir),
        "cameras": [{"id": "cam1"}],
    }
    return parse_config({**data, **over})


def stamp_copy(source: Path, dest: Path, at: datetime) -> Path:
    """A copy of `source` whose EXIF DateTimeOriginal is `at` (camera-local time)."""
    with Image.open(source) as img:
        exif = img.getexif()
        exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = at.strftime("%Y:%m:%d %H:%M:%S")
        img.save(dest, exif=exif, quality=95)
    return dest
