"""The stills stream: bursts close on a capture-time gap or after MAX_BURST_FRAMES, and a
burst waiting for its last frame holds no pixels."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.detect import DetectionResult, Detector, detector_settings
from edge.ingest import MediaItem
from edge.pipeline import MAX_BURST_FRAMES, Pipeline, build_rules
from tests.factories import SHANGHAI, node_config

T0 = datetime(2026, 11, 22, 6, 0, tzinfo=SHANGHAI)


class Blind(Detector):
    """A detector that sees nothing (the stream's bookkeeping is under test, not vision)."""

    def detect(self, image_bgr: npt.NDArray[Any]) -> DetectionResult:
        h, w = image_bgr.shape[:2]
        return DetectionResult([], w, h, "blind", 0.0)


def _pipeline(tmp_path: Path, models_dir: Path) -> Pipeline:
    config = node_config(tmp_path, models_dir, classifier={"enabled": False})
    detector = Blind(Path(), [], detector_settings(backend="yolox"))
    return Pipeline(config, detector, build_rules(config))


def _items(tmp_path: Path, seconds: list[float]) -> list[MediaItem]:
    items = []
    for i, s in enumerate(seconds):
        path = tmp_path / f"IMG_{i:04d}.jpg"
        cv2.imwrite(str(path), np.full((48, 64, 3), 40 + i, np.uint8))
        items.append(MediaItem(path, "cam1", T0 + timedelta(seconds=s), "exif", f"{i:064x}"))
    return items


def test_a_burst_is_decided_when_a_later_frame_ends_it(tmp_path: Path, models_dir: Path) -> None:
    stream = _pipeline(tmp_path, models_dir).stills()
    items = _items(tmp_path, [0, 4, 8, 100, 104])
    closed = [[a.item.path.name for a in stream.push(item) if a.item] for item in items]
    assert closed == [[], [], [], ["IMG_0000.jpg", "IMG_0001.jpg", "IMG_0002.jpg"], []]
    assert [i.path.name for i in stream.pending] == ["IMG_0003.jpg", "IMG_0004.jpg"]
    assert [a.item.path.name for a in stream.flush() if a.item] == ["IMG_0003.jpg", "IMG_0004.jpg"]
    assert stream.pending == [] and stream.flush() == []


def test_frames_without_capture_times_do_not_make_one_endless_burst(
    tmp_path: Path, models_dir: Path
) -> None:
    stream = _pipeline(tmp_path, models_dir).stills()
    sizes = [len(stream.push(item)) for item in _items(tmp_path, [0.0] * (MAX_BURST_FRAMES + 3))]
    assert sizes == [0] * MAX_BURST_FRAMES + [MAX_BURST_FRAMES, 0, 0]


def test_a_waiting_burst_keeps_no_pixels_and_evidence_reads_them_again(
    tmp_path: Path, models_dir: Path
) -> None:
    pipeline = _pipeline(tmp_path, models_dir)
    stream = pipeline.stills()
    (item,) = _items(tmp_path, [0])
    assert stream.push(item) == []
    assert all(look.image is None for look in stream._burst)
    (analysis,) = stream.flush()
    assert analysis.image is None and analysis.pixels().shape == (48, 64, 3)
