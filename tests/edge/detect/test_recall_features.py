"""Recall features: IR detection and CLAHE, tile confirmation, fusion, the ensemble back-end."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from broker.payloads import Category
from edge.detect import Detection, DetectorSettings, available, create, detector_settings
from edge.detect.enhance import channel_spread, clahe_luminance, is_infrared
from edge.detect.fusion import fuse
from edge.detect.plugins.ensemble import MEMBER_SCORE, EnsembleSettings, member_settings
from edge.detect.postprocess import apply_thresholds, penalise_unconfirmed
from edge.detect.runtime import OnnxDetector

IR_FRAME = "ct_ena24_2480.jpg"  # night infra-red opossum
DAY_FRAME = "ct_ena24_352.jpg"  # daylight squirrel


def _image(images_dir: Path, name: str) -> np.ndarray:
    image = cv2.imread(str(images_dir / name))
    assert image is not None, name
    return image


def _det(x1: float, score: float, category: Category, label: str = "x") -> Detection:
    return Detection(x1, 10.0, x1 + 50.0, 60.0, score, 0, label, category)


def test_infrared_test_on_real_frames(images_dir: Path) -> None:
    assert is_infrared(_image(images_dir, IR_FRAME))
    assert not is_infrared(_image(images_dir, DAY_FRAME))
    grey = np.full((40, 40, 3), 90, np.uint8)
    assert channel_spread(grey) == 0.0
    with pytest.raises(ValueError):
        channel_spread(np.zeros((4, 4), np.uint8))


def test_clahe_raises_local_contrast_and_keeps_shape() -> None:
    rng = np.random.default_rng(0)
    low = (100 + rng.integers(0, 8, size=(64, 96), dtype=np.uint8)).astype(np.uint8)
    image = np.dstack([low, low, low])
    out = clahe_luminance(image)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert out.std() > image.std() * 1.5
    assert is_infrared(out)  # stays grey
    with pytest.raises(ValueError):
        clahe_luminance(image.astype(np.float32))


def test_ir_modes_choose_frames(models_dir: Path, images_dir: Path) -> None:
    night, day = _image(images_dir, IR_FRAME), _image(images_dir, DAY_FRAME)
    both = create(DetectorSettings(backend="yolox", ir_enhance="both"), models_dir)
    assert isinstance(both, OnnxDetector)
    assert len(both.frames(night)) == 2 and len(both.frames(day)) == 1
    enhanced = create(DetectorSettings(backend="yolox", ir_enhance="enhanced"), models_dir)
    assert isinstance(enhanced, OnnxDetector)
    (frame,) = enhanced.frames(night)
    assert frame is not night and frame.std() > night.std()
    assert max(frame.shape[:2]) == 416  # enhanced at the network's input scale, not full size
    found = enhanced.detect(night).detections
    h, w = night.shape[:2]
    assert found and all(0 <= d.x1 < d.x2 <= w and 0 <= d.y1 < d.y2 <= h for d in found)
    assert max(d.x2 for d in found) > 416  # boxes come back in the full frame's pixels
    off = create(DetectorSettings(backend="yolox", ir_enhance="off"), models_dir)
    assert isinstance(off, OnnxDetector)
    assert off.frames(night)[0] is night


def test_unconfirmed_tile_boxes_are_penalised() -> None:
    tiles = np.array([[0, 0, 10, 10], [100, 100, 120, 120]], np.float32)
    full = np.array([[1, 1, 12, 12]], np.float32)
    scores = np.array([0.5, 0.5], np.float32)
    out = penalise_unconfirmed(tiles, scores, ["animal", "animal"], full, ["animal"], 0.6)
    assert out.tolist() == pytest.approx([0.5, 0.3])
    other = penalise_unconfirmed(tiles, scores, ["animal", "animal"], full, ["person"], 0.6)
    assert other.tolist() == pytest.approx([0.3, 0.3])
    same = penalise_unconfirmed(tiles, scores, ["animal", "animal"], full, ["animal"], 1.0)
    assert same.tolist() == pytest.approx([0.5, 0.5])


def test_thresholds_keep_unsure_birds_as_animals() -> None:
    th = {Category.ANIMAL: 0.2, Category.BIRD: 0.5, Category.PERSON: 0.4}
    dets = [
        _det(0, 0.6, Category.BIRD),
        _det(100, 0.3, Category.BIRD),
        _det(200, 0.1, Category.BIRD),
        _det(300, 0.3, Category.PERSON),
    ]
    kept = apply_thresholds(dets, lambda c: th.get(c, 0.3))
    assert [(d.category, d.score) for d in kept] == [
        (Category.BIRD, 0.6),
        (Category.ANIMAL, 0.3),
    ]
    assert kept[1].label == "x"


def test_fusion_averages_agreement_and_merges_animal_family() -> None:
    a = [_det(0, 0.8, Category.BIRD, "bird"), _det(300, 0.6, Category.PERSON)]
    b = [_det(2, 0.4, Category.ANIMAL, "cat")]
    fused = fuse([a, b], iou_threshold=0.5, mode="avg")
    assert len(fused) == 2
    bird = fused[0]
    assert bird.category == Category.BIRD and bird.label == "bird"
    assert bird.score == pytest.approx(0.6)
    assert 0.0 < bird.x1 < 2.0  # score-weighted box
    assert fused[1].score == pytest.approx(0.3)  # one model of two
    maxed = fuse([a, b], iou_threshold=0.5, mode="max")
    assert [d.score for d in maxed] == pytest.approx([0.8, 0.6])
    assert fuse([[], []], 0.5) == []
    with pytest.raises(ValueError):
        fuse([a], 0.5, mode="median")


def test_ensemble_backend_registered_and_validated() -> None:
    assert "ensemble" in available()
    settings = detector_settings(backend="ensemble", category_thresholds={Category.BIRD: 0.4})
    assert isinstance(settings, EnsembleSettings)  # the back-end's own settings class
    member = member_settings(settings, "nanodet_m_416_coco")
    assert member.backend == "nanodet" and member.score_threshold == MEMBER_SCORE
    assert member.category_thresholds == {}
    with pytest.raises(ValidationError):
        detector_settings(backend="ensemble", members=["yolox_nano_416_coco"])
    with pytest.raises(ValidationError, match="second_look_below null"):
        detector_settings(backend="ensemble", fusion="avg")  # a cascade would halve its boxes
    assert detector_settings(backend="ensemble", fusion="avg", second_look_below=None)


def test_ensemble_finds_the_bird(models_dir: Path, images_dir: Path) -> None:
    detector = create(detector_settings(backend="ensemble", second_look_below=None), models_dir)
    result = detector.detect(_image(images_dir, "bird_coral_bird.jpg"))
    assert result.model == "yolox_nano_416_coco+nanodet_m_416_coco"  # both looked
    assert any(d.category == Category.BIRD for d in result.detections)
    assert all(d.score >= detector.settings.threshold_for(d.category) for d in result.detections)


def test_cascade_looks_again_only_where_the_first_model_is_unsure(
    models_dir: Path, images_dir: Path
) -> None:
    detector = create(detector_settings(backend="ensemble"), models_dir)
    sure = detector.detect(_image(images_dir, "bird_coral_bird.jpg"))
    assert sure.model == "yolox_nano_416_coco"  # YOLOX-Nano scores the bird 0.9: no second look
    assert any(d.category == Category.BIRD for d in sure.detections)
    # A night opossum YOLOX-Nano scores about 0.1: NanoDet looks again and finds it.
    unsure = detector.detect(_image(images_dir, "ct_ena24_2573.jpg"))
    assert unsure.model == "yolox_nano_416_coco+nanodet_m_416_coco"
    assert any(d.category == Category.ANIMAL for d in unsure.detections)
    alone = create(detector_settings(backend="yolox"), models_dir)
    assert not alone.detect(_image(images_dir, "ct_ena24_2573.jpg")).detections


def test_night_bird_needs_every_member(models_dir: Path, images_dir: Path) -> None:
    # A night grey fox NanoDet calls "bird" (about 0.35) and YOLOX-Nano does not: with a bird
    # threshold low enough for that call, agreement keeps it an animal.
    low = {Category.BIRD: 0.3, Category.ANIMAL: 0.2}
    fox = _image(images_dir, "ct_ena24_4451.jpg")
    alone = create(
        detector_settings(backend="ensemble", category_thresholds=low, night_bird_agreement=False),
        models_dir,
    ).detect(fox)
    assert any(d.category == Category.BIRD for d in alone.detections)
    agreed = create(
        detector_settings(backend="ensemble", category_thresholds=low), models_dir
    ).detect(fox)
    assert agreed.detections
    assert all(d.category != Category.BIRD for d in agreed.detections)
    # The crow on an infra-red frame is a bird to both models: it stays a bird.
    crow = create(detector_settings(backend="ensemble"), models_dir).detect(
        _image(images_dir, "ct_ena24_8200.jpg")
    )
    assert crow.model == "yolox_nano_416_coco+nanodet_m_416_coco"
    assert any(d.category == Category.BIRD for d in crow.detections)
