"""Scenario fixtures: the real detector, nodes with their own data_dir, EXIF-stamped copies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from broker.payloads import EventKind, EventPayload
from edge.config import NodeConfig, parse_config
from edge.detect import Detector, DetectorSettings, create
from edge.ingest.folder import media_item
from edge.pipeline import Pipeline, build_rules
from tests.factories import stamp_copy

SH = ZoneInfo("Asia/Shanghai")

Stamp = Callable[[str, datetime, str], Path]


@pytest.fixture(scope="session")
def detector(models_dir: Path) -> Detector:
    """The default detector on the shared models."""
    return create(DetectorSettings(), models_dir)


@pytest.fixture()
def stamp(images_dir: Path, tmp_path: Path) -> Stamp:
    """stamp(image, capture time, camera) -> the stamped copy in that camera's folder."""

    def _stamp(name: str, at: datetime, camera: str) -> Path:
        folder = tmp_path / "drop" / camera
        folder.mkdir(parents=True, exist_ok=True)
        return stamp_copy(images_dir / name, folder / f"{camera}_{at:%Y%m%d_%H%M%S}.jpg", at)

    return _stamp


@pytest.fixture()
def node(tmp_path: Path, detector: Detector) -> Callable[..., Pipeline]:
    """node(cameras, rules={...}) -> a pipeline of a node at changxing with real rules and state."""

    def _node(cameras: list[str], rules: dict[str, Any] | None = None) -> Pipeline:
        data_dir = tmp_path / "data"
        data_dir.mkdir(exist_ok=True)
        config: NodeConfig = parse_config(
            {
                "site": "changxing",
                "node": "cx-01",
                "data_dir": str(data_dir),
                "cameras": [{"id": c} for c in cameras],
                "rules": rules or {},
            }
        )
        return Pipeline(config, detector, build_rules(config))

    return _node


def run(pipeline: Pipeline, paths: list[Path], camera: str) -> list[EventPayload]:
    """Feed stamped images of one camera through the pipeline in capture order; all events."""
    items = sorted(
        (media_item(p, camera, pipeline.config.tz) for p in paths), key=lambda i: i.captured_at
    )
    assert all(i.time_source == "exif" for i in items)
    stream = pipeline.stills()  # the node's road: bursts decided together
    analyses = [a for item in items for a in stream.push(item)] + stream.flush()
    return [ev for a in analyses for ev in a.events]


def anomalies(events: list[EventPayload]) -> list[tuple[str | None, str]]:
    """(rule, severity) of the anomalies among events."""
    return [(e.rule, e.severity.value) for e in events if e.kind is EventKind.ANOMALY]
