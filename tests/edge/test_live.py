"""Live camera worker: detections on motion crops land in full-frame coordinates; a real clip
runs through gate, detector, tracker and rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from broker.payloads import Category, EventPayload
from edge.config import parse_config
from edge.detect import DetectorSettings, create
from edge.ingest import load_image
from edge.ingest.video import sample_video
from edge.live import LiveCamera
from edge.motion import Region
from edge.pipeline import build_pipeline, detect_regions
from tests.factories import node_config


def test_crop_detections_map_back_to_the_frame(images_dir: Path, models_dir: Path) -> None:
    detector = create(DetectorSettings(), models_dir)
    image = load_image(images_dir / "bird_coral_bird.jpg")
    full = [d for d in detector.detect(image).detections if d.category is Category.BIRD]
    assert full
    b = full[0]
    pad = 40
    region = Region(
        max(0, int(b.x1) - pad),
        max(0, int(b.y1) - pad),
        min(image.shape[1], int(b.x2) + pad),
        min(image.shape[0], int(b.y2) + pad),
    )
    canvas = np.full((800, 1200, 3), 90, np.uint8)  # the bird pasted into a larger frame
    canvas[300 : 300 + image.shape[0], 500 : 500 + image.shape[1]] = image
    moved = Region(region.x1 + 500, region.y1 + 300, region.x2 + 500, region.y2 + 300)
    found = detect_regions(detector, canvas, [moved])
    birds = [d for d in found.detections if d.category is Category.BIRD]
    assert birds and (found.width, found.height) == (1200, 800)
    d = birds[0]
    assert abs(d.x1 - (b.x1 + 500)) < 25 and abs(d.y2 - (b.y2 + 300)) < 25


def test_clip_through_the_live_path(shared_dir: Path, models_dir: Path, tmp_path: Path) -> None:
    config = node_config(tmp_path, models_dir, cameras=[{"id": "live1"}])
    pipeline = build_pipeline(config)
    sunk: list[int] = []
    # no feed: frames are handed in directly
    cam = LiveCamera(config.cameras[0], None, pipeline, lambda evs: sunk.append(len(evs)))
    clip = shared_dir / "data" / "videos" / "zamba_chimp_320x180.mp4"
    t = 0.0
    for _, frame in sample_video(clip, every_s=0.2):
        cam.process(frame, t)
        t += 0.2
    stats = cam.stream.gate.stats
    assert cam.frames == stats.frames > 10
    assert stats.full >= 1  # the periodic full-frame check ran at least once
    assert stats.skipped + stats.crops + stats.full == stats.frames


def test_node_runs_a_live_camera_and_reports_its_health(
    shared_dir: Path, models_dir: Path, tmp_path: Path, mosquitto: object
) -> None:
    from broker.payloads import CameraState
    from edge.app import EdgeNode
    from tests.helpers import MosquittoServer, wait_for

    assert isinstance(mosquitto, MosquittoServer)
    clip = shared_dir / "data" / "videos" / "zamba_chimp_320x180.mp4"
    config = parse_config(
        {
            "site": "changxing",
            "node": "live-node",
            "model_store": str(models_dir),
            "data_dir": str(tmp_path / "edge"),
            "mqtt": {"port": mosquitto.port},
            "cameras": [{"id": "live1", "source": str(clip), "live": {"loop_file": True}}],
        }
    )
    node = EdgeNode(config)
    node.start()
    try:
        assert wait_for(lambda: node.live[0].frames >= 5, 30)
        assert node.camera_states()["live1"] in set(CameraState)
    finally:
        node.stop()


def test_live_birds_are_named_and_smoothed_over_their_track(
    images_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    config = node_config(
        tmp_path,
        models_dir,
        cameras=[{"id": "live1", "gate": {"full_frame_every_frames": 1}}],
        classifier={"restrict_to_catalogue": False},  # the test bird is not a Zhejiang one
    )
    events: list[EventPayload] = []
    cam = LiveCamera(config.cameras[0], None, build_pipeline(config), events.extend)
    frame = load_image(images_dir / "bird_coral_bird.jpg")
    for k in range(5):
        cam.process(frame, float(k))
    (calls,) = cam.stream._calls.values()  # one bird, one track
    assert len(calls) == 5
    named = {
        e.species.scientific_name for e in events if e.category == "bird" and e.species is not None
    }
    assert named == {"Poecile atricapillus"}
