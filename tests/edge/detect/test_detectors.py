"""Detector back-ends on real images, plus the pure NMS, category and tiling helpers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from broker.payloads import Category
from edge.detect import (
    Detection,
    DetectionResult,
    Detector,
    DetectorSettings,
    available,
    create,
)
from edge.detect.categories import ANIMAL_CATEGORIES, COCO_CATEGORIES, coco_category
from edge.detect.nms import nms
from edge.detect.plugins.nanodet import anchor_points, distribution_to_distance
from edge.detect.plugins.yolox import decode_yolox, grid_and_strides
from edge.detect.postprocess import Window, drop_cut_boxes, letterbox, tile_windows
from models.registry import ModelNotInstalled

BACKENDS = {"yolox": "yolox_nano_416_coco", "nanodet": "nanodet_m_416_coco"}


def _image(images_dir: Path, name: str) -> np.ndarray:
    image = cv2.imread(str(images_dir / name))
    assert image is not None, name
    return image


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def detector(request: pytest.FixtureRequest, models_dir: Path) -> Detector:
    """Each back-end with its default model from the session model store."""
    return create(
        DetectorSettings(backend=request.param, model=BACKENDS[request.param]), models_dir
    )


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def tiled_detector(request: pytest.FixtureRequest, models_dir: Path) -> Detector:
    """Each back-end with tiling on (for small, distant people and vehicles)."""
    settings = DetectorSettings(backend=request.param, model=BACKENDS[request.param], tiling=True)
    return create(settings, models_dir)


def test_registry_lists_both_backends() -> None:
    assert {"yolox", "nanodet"} <= set(available())


def test_settings_validate_backend_and_model() -> None:
    with pytest.raises(ValidationError, match="unknown detector backend"):
        DetectorSettings(backend="nope")
    with pytest.raises(ValidationError, match="decoder"):
        DetectorSettings(backend="nanodet", model="yolox_nano_416_coco")
    with pytest.raises(ValidationError):
        DetectorSettings(threads=0)
    with pytest.raises(ValidationError):
        DetectorSettings.model_validate({"typo": 1})
    with pytest.raises(ValidationError, match="camera"):
        DetectorSettings(category_thresholds={Category.CAMERA: 0.5})
    settings = DetectorSettings.model_validate({"category_thresholds": {"person": 0.6}})
    assert settings.threshold_for(Category.PERSON) == 0.6
    assert settings.threshold_for(Category.BIRD) == settings.score_threshold


def test_create_without_models_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(ModelNotInstalled, match="models import"):
        create(DetectorSettings(), tmp_path)


def test_bird_photo_gives_bird_on_the_bird(detector: Detector, images_dir: Path) -> None:
    image = _image(images_dir, "bird_coral_bird.jpg")
    result = detector.detect(image)
    assert isinstance(result, DetectionResult)
    assert (result.width, result.height) == (image.shape[1], image.shape[0])
    assert result.inference_ms > 0
    birds = [d for d in result.detections if d.category is Category.BIRD and d.score > 0.5]
    assert birds, result.detections
    best = max(birds, key=lambda d: d.score)
    x, y, w, h = best.normalised(result.width, result.height)
    assert x >= 0 and y >= 0 and x + w <= 1.0 + 1e-6 and y + h <= 1.0 + 1e-6
    # The bird fills most of this photo (checked visually: about 86% x 83% of the frame).
    assert w * h > 0.4
    assert 0.3 < x + w / 2 < 0.7 and 0.35 < y + h / 2 < 0.75


def test_empty_night_frame_has_no_animal_at_plain_threshold(
    detector: Detector, images_dir: Path
) -> None:
    # At 0.3 for every category the single models stay silent on the empty IR frame. The
    # recall-oriented defaults (animal 0.2) accept one false animal here: see DEFAULT_BACKEND.
    result = detector.detect(_image(images_dir, "ct_ecoassist_empty_night.jpg"))
    plain = [d for d in result.detections if d.category in ANIMAL_CATEGORIES and d.score >= 0.3]
    assert not plain


def test_person_frame_gives_person(tiled_detector: Detector, images_dir: Path) -> None:
    # Two walkers ~30 px tall in a 640x365 frame: the full frame alone (416 px input) misses
    # them with both models at 0.3; square tiles find them. (Tiling is off by default: on the
    # empty night frame it adds false animals on tree trunks.)
    result = tiled_detector.detect(_image(images_dir, "ct_ecoassist_person.jpg"))
    people = [d for d in result.detections if d.category is Category.PERSON]
    assert people, result.detections
    assert all(290 <= (d.y1 + d.y2) / 2 <= 340 for d in people)


def test_vehicle_frame_gives_vehicle(tiled_detector: Detector, images_dir: Path) -> None:
    result = tiled_detector.detect(_image(images_dir, "ct_ecoassist_vehicle.jpg"))
    assert [d for d in result.detections if d.category is Category.VEHICLE], result.detections


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        None,
    ],
)
def test_unusable_image_raises_value_error(detector: Detector, bad: object) -> None:
    with pytest.raises(ValueError, match="image"):
        detector.detect(bad)  # type: ignore[arg-type]  # ill-typed on purpose: refused at run time


def test_nms_is_class_wise_and_ordered() -> None:
    boxes = np.array(
        [[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], dtype=np.float32
    )
    scores = np.array([0.6, 0.9, 0.8, 0.7], dtype=np.float32)
    classes = np.array([0, 0, 1, 0], dtype=np.intp)
    keep = nms(boxes, scores, classes, iou_threshold=0.5)
    # Box 0 is suppressed by box 1 (same class); box 2 survives (other class).
    assert keep.tolist() == [1, 2, 3]
    assert nms(boxes, scores, classes, 0.5, max_keep=2).tolist() == [1, 2]
    empty = nms(np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, np.intp), 0.5)
    assert empty.size == 0


def test_category_map() -> None:
    assert coco_category(14) is Category.BIRD
    assert coco_category(16) is Category.DOG
    assert coco_category(0) is Category.PERSON
    for cid in (15, 17, 18, 19, 20, 21, 22, 23):
        assert coco_category(cid) is Category.ANIMAL
    for cid in (1, 2, 3, 5, 6, 7, 8):
        assert coco_category(cid) is Category.VEHICLE
    assert coco_category(4) is None  # aeroplane: herons in flight, not an intrusion
    assert coco_category(77) is None  # teddy bear
    assert coco_category(56) is None  # chair
    assert Category.CAMERA not in COCO_CATEGORIES.values()


def test_detection_normalised_clips() -> None:
    d = Detection(-10.0, 20.0, 110.0, 70.0, 0.9, 14, "bird", Category.BIRD)
    assert d.normalised(100, 100) == pytest.approx((0.0, 0.2, 1.0, 0.5))


def test_yolox_decode_grid_and_scores() -> None:
    grid, _strides = grid_and_strides((416, 416))
    assert len(grid) == 3549
    raw = np.zeros((1, 3549, 85), np.float32)
    row = 52 * 3 + 5  # stride 8, cell x=5, y=3
    raw[0, row, :5] = [0.5, 0.5, 0.0, 0.0, 0.8]
    raw[0, row, 5 + 14] = 0.5
    boxes, scores = decode_yolox(raw, (416, 416))
    assert boxes[row].tolist() == pytest.approx([40.0, 24.0, 48.0, 32.0])
    assert scores[row, 14] == pytest.approx(0.4)


def test_nanodet_decode_helpers() -> None:
    points = anchor_points((416, 416), 8)
    assert len(points) == 2704 and points[0].tolist() == [4.0, 4.0]
    logits = np.full((1, 32), -50.0, np.float32)
    logits[0, [2, 8 + 3, 16 + 0, 24 + 7]] = 50.0
    assert distribution_to_distance(logits)[0].tolist() == pytest.approx([2, 3, 0, 7])


def test_letterbox_and_tiles() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    canvas, placement = letterbox(image, (416, 416), 114, centred=True)
    assert canvas.shape == (416, 416, 3) and placement.pad_y == 104 and placement.scale == 2.08
    back = placement.to_original(np.array([[0, 104, 416, 312]], np.float32), 200, 100)
    assert back[0].tolist() == pytest.approx([0, 0, 200, 100])
    assert tile_windows(400, 380) == []
    wins = tile_windows(1920, 1080)
    assert wins[0] == Window(0, 0, 1080, 1080) and wins[-1] == Window(840, 0, 1920, 1080)
    cut = drop_cut_boxes(
        np.array([[10, 10, 1079, 50], [10, 10, 500, 50]], np.float32), wins[0], 1920, 1080
    )
    assert cut.tolist() == [False, True]


def test_each_backend_validates_its_own_config_section() -> None:
    from edge.config import ConfigError, parse_config
    from edge.detect.plugins.ensemble import EnsembleSettings

    base = {"site": "s1", "node": "n1", "cameras": [{"id": "cam1"}]}
    members = ["yolox_nano_416_coco", "nanodet_m_416_coco"]
    section = {
        "backend": "ensemble",
        "members": members,
        "fusion": "avg",
        "second_look_below": None,
    }
    config = parse_config(base | {"detector": section})
    assert isinstance(config.detector, EnsembleSettings)
    assert config.detector.fusion == "avg" and config.detector.model_ids() == members
    assert config.model_dump()["detector"]["fusion"] == "avg"  # the plugin's fields are kept
    with pytest.raises(ConfigError, match="members"):  # not an option of the yolox back-end
        parse_config(base | {"detector": {"backend": "yolox", "members": members}})
    with pytest.raises(ConfigError, match="available"):
        parse_config(base | {"detector": {"backend": "coral"}})
