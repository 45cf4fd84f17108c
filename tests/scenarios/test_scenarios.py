"""End-to-end rule scenarios on the real shared images with the real detector.

Each asserts exactly which rule fires, with which severity, and that it fires once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from broker.payloads import CameraState
from edge.ingest import load_image
from edge.ingest.live import CameraHealthMonitor
from edge.pipeline import Pipeline
from tests.scenarios.conftest import SH, Stamp, anomalies, run

BIRD = "bird_coral_bird.jpg"
EMPTY = "ct_ena24_4330.jpg"  # nothing detected: the scene before the bird came
START = datetime(2026, 11, 21, 9, 0, tzinfo=SH)
Node = Callable[..., Pipeline]


def _still_bird(stamp: Stamp, camera: str, start: datetime) -> list[Path]:
    paths = [stamp(EMPTY, start - timedelta(minutes=5), camera)]
    paths += [stamp(BIRD, start + timedelta(minutes=m), camera) for m in range(0, 16, 2)]
    return paths


def test_motionless_bird(node: Node, stamp: Stamp) -> None:
    pipeline = node(["cam1"])
    events = run(pipeline, _still_bird(stamp, "cam1", START), "cam1")
    assert anomalies(events) == [("motionless_bird", "alert")]
    (ev,) = [e for e in events if e.rule == "motionless_bird"]
    assert ev.captured_at == START and ev.captured_until == START + timedelta(minutes=10)
    assert ev.source == "cam1_20261121_091000.jpg"
    assert ev.message_zh == "发现1只鸟在同一位置静止超过10分钟，疑似死亡或患病"
    assert len(ev.boxes) == 1 and ev.boxes[0].category.value == "bird"


def test_mortality_cluster_across_three_cameras(node: Node, stamp: Stamp) -> None:
    cameras = ["cam1", "cam2", "cam3"]
    pipeline = node(cameras)
    events = []
    for i, cam in enumerate(cameras):
        events += run(pipeline, _still_bird(stamp, cam, START + timedelta(hours=i)), cam)
    assert anomalies(events) == [("motionless_bird", "alert")] * 3 + [
        ("mortality_cluster", "critical")
    ]
    (cluster,) = [e for e in events if e.rule == "mortality_cluster"]
    assert cluster.count == 3 and cluster.camera == "cam3"
    assert cluster.message_zh == (
        "24小时内在3台相机发现3只未识别种类的鸟疑似死亡，已达聚集性死亡标准"
    )


def test_mortality_cluster_survives_a_restart(node: Node, stamp: Stamp) -> None:
    """Power cut between the second and the third dead bird: the node starts again on the same
    data_dir and still raises the cluster, and does not raise it again after another restart."""
    cameras = ["cam1", "cam2", "cam3", "cam4"]
    events = []
    for i, cam in enumerate(cameras):
        pipeline = node(cameras)  # a fresh start of the node for every bird
        events += run(pipeline, _still_bird(stamp, cam, START + timedelta(hours=i)), cam)
    assert anomalies(events) == [("motionless_bird", "alert")] * 3 + [
        ("mortality_cluster", "critical"),
        ("motionless_bird", "alert"),
    ]


def test_one_carcass_seen_by_bursts_hours_apart(node: Node, stamp: Stamp) -> None:
    """A camera trap fires every two hours (other animals passing) and sees the same dead bird
    each time: one suspected death, no mortality cluster of one bird."""
    pipeline = node(["cam1"])
    paths = [stamp(EMPTY, START - timedelta(minutes=5), "cam1")]
    for h in (0, 2, 4):
        at = START + timedelta(hours=h)
        paths += [stamp(BIRD, at + timedelta(minutes=m), "cam1") for m in (0, 5, 10)]
    events = run(pipeline, paths, "cam1")
    assert anomalies(events) == [("motionless_bird", "alert")]


def test_night_intrusion(node: Node, stamp: Stamp) -> None:
    pipeline = node(["cam1"])
    at = datetime(2026, 11, 22, 2, 0, tzinfo=SH)
    events = run(pipeline, [stamp("ct_ecoassist_vehicle.jpg", at, "cam1")], "cam1")
    assert anomalies(events) == [("night_intrusion", "alert")]
    assert "夜间02:00" in events[-1].message_zh


def test_free_roaming_dog(node: Node, stamp: Stamp) -> None:
    pipeline = node(["cam1"])
    at = datetime(2026, 11, 22, 10, 0, tzinfo=SH)
    paths = [stamp("photo_coral_pets.jpg", at + timedelta(minutes=m), "cam1") for m in (0, 1, 5)]
    events = run(pipeline, paths, "cam1")
    assert anomalies(events) == [("free_roaming_dog", "alert")]  # cooldown: one, not three


def test_frozen_feed_is_one_camera_health(node: Node, stamp: Stamp) -> None:
    pipeline = node(["cam1"])
    frame = load_image(stamp(BIRD, START, "cam1"))
    monitor = CameraHealthMonitor()
    events = []
    for s in range(0, 300, 5):  # the same frame for five minutes
        state = monitor.observe(frame, float(s))
        if state is not None:
            events += pipeline.camera_health("cam1", state, START + timedelta(seconds=s))
    assert monitor.state is CameraState.FROZEN
    assert anomalies(events) == [("camera_health", "warning")]
    assert events[0].category.value == "camera" and "画面冻结" in events[0].message_zh


def test_abnormal_count_rising(node: Node, stamp: Stamp) -> None:
    # five quiet days (the camera works, sees no bird), then a day with two herons; all in the
    # past, as ingest refuses EXIF times more than a day ahead of the clock
    pipeline = node(["cam1"], {"abnormal_count": {"min_delta": 2}})
    paths = [stamp(EMPTY, START - timedelta(days=6 - d), "cam1") for d in range(5)]
    paths.append(stamp("ct_md_nacti_heron_flight.jpg", START - timedelta(days=1), "cam1"))
    events = run(pipeline, paths, "cam1")
    assert anomalies(events) == [("abnormal_count", "warning")]
    (ev,) = [e for e in events if e.rule == "abnormal_count"]
    assert ev.count == 2 and ev.category.value == "bird"


def test_people_at_night_on_a_wide_view_camera(
    tmp_path: Path, models_dir: Path, stamp: Stamp
) -> None:
    """The walkers in this frame are ~30 px tall: a camera over open ground runs the detector
    with tiling (a per-node setting), and two people at 02:00 raise one night_intrusion."""
    from edge.config import parse_config
    from edge.detect import DetectorSettings, create
    from edge.pipeline import Pipeline, build_rules

    config = parse_config(
        {
            "site": "changxing",
            "node": "cx-01",
            "data_dir": str(tmp_path),
            "cameras": [{"id": "cam1"}],
        }
    )
    detector = create(DetectorSettings(tiling=True), models_dir)
    pipeline = Pipeline(config, detector, build_rules(config))
    at = datetime(2026, 11, 22, 2, 0, tzinfo=SH)
    events = run(pipeline, [stamp("ct_ecoassist_person.jpg", at, "cam1")], "cam1")
    assert anomalies(events) == [("night_intrusion", "alert")]
    (intrusion,) = [e for e in events if e.rule == "night_intrusion"]
    assert intrusion.category == "person" and intrusion.count >= 1
