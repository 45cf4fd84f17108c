"""Generic Ultralytics-layout back-end: YOLOX weights wrapped as YOLOv5/v8; pure decoding."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from broker.payloads import Category
from edge.detect import Detection, Detector, DetectorSettings, available, create
from edge.detect.nms import iou_one_to_many
from edge.detect.plugins.yolo import (
    ULTRALYTICS_INPUT,
    YoloGenericDetector,
    YoloInput,
    coco80_names,
    decode_yolo,
    detect_layout,
    preprocess_yolo,
)
from edge.detect.plugins.yolox import preprocess_yolox
from models.registry import InputSpec, load_manifest

if TYPE_CHECKING:  # the module imports onnx, which the converted fixture skips without
    from models.export.yolox_to_ultralytics import InputFormat

YOLOX = "yolox_nano_416_coco"
# (layout, input format): YOLOX's own input, and RGB 0-1 input nodes in front of the weights.
VARIANTS: list[tuple[Literal["v5", "v8"], InputFormat]] = [
    ("v5", "yolox"),
    ("v8", "yolox"),
    ("v8", "rgb01"),
]
# Real images: a bird photo, a vehicle, a car with a dog, a night infra-red animal frame.
IMAGES = [
    "bird_coral_bird.jpg",
    "ct_ecoassist_vehicle.jpg",
    "ct_ecoassist_car_dog.jpg",
    "ct_ecoassist_animal_night.jpg",
]
RGB01_TOP_LEFT = YoloInput(colour="RGB", scale="0-1", centred=False, pad_value=114)


def _image(images_dir: Path, name: str) -> np.ndarray:
    image = cv2.imread(str(images_dir / name))
    assert image is not None, name
    return image


def _spec(**changes: object) -> InputSpec:
    base = load_manifest().get(YOLOX).input
    return base.model_copy(update=changes)


@pytest.fixture(scope="module")
def settings() -> DetectorSettings:
    """YOLOX settings with tiling on (the vehicle is only found in tiles)."""
    return DetectorSettings(backend="yolox", model=YOLOX, tiling=True)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> dict[str, Path]:
    """The shared YOLOX-Nano converted to each Ultralytics layout variant."""
    pytest.importorskip("onnx", reason="onnx (test extra) is needed to convert YOLOX")
    from models.export.yolox_to_ultralytics import convert

    out = tmp_path_factory.mktemp("ultralytics")
    paths: dict[str, Path] = {}
    for layout, fmt in VARIANTS:
        dst = out / f"yolox_nano_{layout}_{fmt}.onnx"
        convert(models_dir / f"{YOLOX}.onnx", dst, layout, input_format=fmt)
        paths[f"{layout}-{fmt}"] = dst
    return paths


@pytest.fixture(scope="module")
def reference(models_dir: Path, settings: DetectorSettings) -> Detector:
    """The YOLOX back-end on the same weights."""
    return create(settings, models_dir)


def _generic(path: Path, settings: DetectorSettings) -> YoloGenericDetector:
    fmt: YoloInput | InputSpec = RGB01_TOP_LEFT if "rgb01" in path.name else _spec()
    return YoloGenericDetector.from_file(path, fmt, coco80_names(), settings)


def _assert_same(got: list[Detection], want: list[Detection]) -> None:
    assert len(got) == len(want), (got, want)
    boxes = np.array([[d.x1, d.y1, d.x2, d.y2] for d in got], np.float32).reshape(-1, 4)
    for w in want:
        ious = iou_one_to_many(np.array([w.x1, w.y1, w.x2, w.y2], np.float32), boxes)
        best = int(np.argmax(ious))
        assert ious[best] > 0.95, (w, got)
        g = got[best]
        assert (g.class_id, g.category) == (w.class_id, w.category)
        assert g.score == pytest.approx(w.score, abs=1e-3)


@pytest.mark.parametrize("variant", [f"{lay}-{fmt}" for lay, fmt in VARIANTS])
def test_converted_models_match_yolox_on_real_images(
    variant: str,
    converted: dict[str, Path],
    reference: Detector,
    settings: DetectorSettings,
    images_dir: Path,
) -> None:
    detector = _generic(converted[variant], settings)
    assert detector.layout == variant[:2]
    for name in IMAGES:
        image = _image(images_dir, name)
        want = reference.detect(image).detections
        result = detector.detect(image)
        assert result.model == converted[variant].stem
        _assert_same(result.detections, want)


def test_generic_finds_bird_and_vehicle(
    converted: dict[str, Path], settings: DetectorSettings, images_dir: Path
) -> None:
    detector = _generic(converted["v8-rgb01"], settings)
    birds = [
        d
        for d in detector.detect(_image(images_dir, "bird_coral_bird.jpg")).detections
        if d.category is Category.BIRD and d.score > 0.5
    ]
    assert birds
    result = detector.detect(_image(images_dir, "ct_ecoassist_vehicle.jpg"))
    assert [d for d in result.detections if d.category is Category.VEHICLE], result.detections


def test_from_file_rejects_wrong_labels_and_input_size(
    converted: dict[str, Path], settings: DetectorSettings
) -> None:
    path = converted["v5-yolox"]
    with pytest.raises(ValueError, match="COCO-80"):
        YoloGenericDetector.from_file(path, _spec(), ["deer", "fox"], settings)
    with pytest.raises(ValueError, match="input spec"):
        YoloGenericDetector.from_file(path, _spec(shape=[1, 3, 640, 640]), coco80_names())
    named = YoloGenericDetector.from_file(path, _spec(), coco80_names(), name="station_v5")
    assert named.name == "station_v5" and named.input_format.colour == "BGR"


def test_backend_registered_and_needs_a_yolo_manifest_model() -> None:
    assert "yolo" in available()
    with pytest.raises(ValidationError, match="decoder"):
        DetectorSettings(backend="yolo", model=YOLOX)


def test_layout_detection() -> None:
    assert detect_layout((1, 3549, 85), 80) == "v5"
    assert detect_layout((1, 84, 8400), 80) == "v8"
    assert detect_layout((1, 25200, 6), 1) == "v5"
    assert detect_layout((1, 5, 8400), 1) == "v8"
    with pytest.raises(ValueError, match="ambiguous"):
        detect_layout((1, 84, 85), 80)
    with pytest.raises(ValueError, match="neither"):
        detect_layout((1, 3549, 90), 80)
    with pytest.raises(ValueError, match="expected"):
        detect_layout((2, 3549, 85), 80)
    with pytest.raises(ValueError, match="expected"):
        detect_layout((3549, 85), 80)


def test_decode_both_layouts() -> None:
    v5 = np.zeros((1, 3, 85), np.float32)
    v5[0, 1, :5] = [100.0, 50.0, 20.0, 10.0, 0.5]
    v5[0, 1, 5 + 14] = 0.8
    boxes, scores = decode_yolo(v5, 80)
    assert boxes.shape == (3, 4) and scores.shape == (3, 80)
    assert boxes[1].tolist() == pytest.approx([90.0, 45.0, 110.0, 55.0])
    assert scores[1, 14] == pytest.approx(0.4) and scores[0].max() == 0.0
    v8 = np.concatenate((v5[..., :4], v5[..., 4:5] * v5[..., 5:]), axis=2).transpose(0, 2, 1)
    v8_boxes, v8_scores = decode_yolo(np.ascontiguousarray(v8), 80)
    assert v8_boxes.tolist() == boxes.tolist()
    np.testing.assert_allclose(v8_scores, scores, rtol=0, atol=1e-7)


def test_preprocess_colour_scale_and_letterbox() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[:] = (10, 20, 30)  # B, G, R
    tensor, placement = preprocess_yolo(image, (416, 416), ULTRALYTICS_INPUT)
    assert tensor.shape == (1, 3, 416, 416) and tensor.dtype == np.float32
    assert (placement.pad_x, placement.pad_y, placement.scale) == (0.0, 104.0, 2.08)
    assert tensor[0, :, 208, 208].tolist() == pytest.approx([30 / 255, 20 / 255, 10 / 255])
    assert tensor[0, :, 0, 0].tolist() == pytest.approx([114 / 255] * 3)
    yolox_like = YoloInput.from_spec(_spec())
    same, same_placement = preprocess_yolo(image, (416, 416), yolox_like)
    want, want_placement = preprocess_yolox(image, (416, 416))
    assert np.array_equal(same, want) and same_placement == want_placement


def test_input_spec_parsing() -> None:
    assert YoloInput.from_spec(_spec()) == YoloInput("BGR", "0-255", False, 114)
    ultralytics = _spec(
        colour="RGB",
        normalisation="x / 255, values 0-1",
        resize="letterbox centred keeping aspect ratio, padding 114",
    )
    assert YoloInput.from_spec(ultralytics) == ULTRALYTICS_INPUT
    zero = _spec(resize="keep-ratio resize centred, zero padding")
    assert YoloInput.from_spec(zero).pad_value == 0
    with pytest.raises(ValueError, match="mean/std"):
        YoloInput.from_spec(load_manifest().get("nanodet_m_416_coco").input)
    bad = [
        {"normalisation": "raw pixels"},
        {"normalisation": "0-255 or 0-1"},
        {"resize": "plain resize to 416x416, padding 114"},
        {"resize": "letterbox keeping aspect ratio, padding 114"},
        {"resize": "letterbox top-left keeping aspect ratio"},
        {"dtype": "uint8"},
    ]
    for changes in bad:
        with pytest.raises(ValueError, match="input images"):
            YoloInput.from_spec(_spec(**changes))
    with pytest.raises(ValueError, match="padding value"):
        YoloInput("RGB", "0-1", True, 300)
