"""Motion detector: moving objects found, noise ignored, masks, recalibration."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from edge.motion import MotionSettings, Region
from edge.motion.improved import ImprovedMotionDetector, mask_image, scale_box, small_size

Frame = npt.NDArray[np.uint8]


def scene(images_dir: Path, size: tuple[int, int] = (1280, 720)) -> Frame:
    image = cv2.imread(str(images_dir / "ct_ena24_2480.jpg"))
    assert image is not None
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)


def noisy(base: Frame, rng: np.random.Generator, sigma: float = 2.0) -> Frame:
    noise = rng.normal(0.0, sigma, base.shape)
    return np.clip(base.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def with_object(base: Frame, x: int, y: int, size: int = 80) -> Frame:
    frame = base.copy()
    cv2.rectangle(frame, (x, y), (x + size, y + size), (20, 20, 20), -1)
    return frame


def test_pure_geometry() -> None:
    assert small_size((1080, 1920, 3), 180) == (320, 180)
    assert small_size((60, 90, 3), 180) == (90, 60)  # never upscaled
    assert scale_box((10, 20, 30, 40), (320, 180), (1080, 1920, 3)) == Region(60, 120, 240, 360)
    mask = mask_image([[[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]], (100, 50))
    assert mask is not None and mask[:, :45].max() == 0 and mask[:, 55:].min() == 255
    assert mask_image([], (100, 50)) is None


def test_static_noise_gives_no_motion(images_dir: Path) -> None:
    base = scene(images_dir)
    rng = np.random.default_rng(1)
    detector = ImprovedMotionDetector()
    found = [detector.detect(noisy(base, rng)) for _ in range(30)]
    assert all(r == [] for r in found)


def test_moving_object_found_in_full_frame_pixels(images_dir: Path) -> None:
    base = scene(images_dir)
    rng = np.random.default_rng(2)
    detector = ImprovedMotionDetector()
    for _ in range(5):
        detector.detect(noisy(base, rng))
    hits: list[list[Region]] = []
    for i in range(10):
        hits.append(detector.detect(noisy(with_object(base, 300 + 30 * i, 400), rng)))
    last = hits[-1]
    assert last, "the moving object was not found"
    box = max(last, key=lambda r: r.area)
    # the object (x 570..650, y 400..480) lies inside the motion box, which stays near it
    assert box.x1 <= 570 + 10 and box.x2 >= 650 - 10 and box.y1 <= 410 and box.y2 >= 470
    assert box.x1 >= 200 and box.x2 <= 800 and box.y1 >= 330 and box.y2 <= 560


def test_mask_excludes_motion(images_dir: Path) -> None:
    base = scene(images_dir)
    left_half = [[[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]]
    detector = ImprovedMotionDetector(MotionSettings.model_validate({"mask": left_half}))
    detector.detect(base)
    assert detector.detect(with_object(base, 100, 300)) == []
    assert detector.detect(with_object(base, 900, 300)) != []


def test_global_change_recalibrates(images_dir: Path) -> None:
    base = scene(images_dir)
    detector = ImprovedMotionDetector(MotionSettings(recalibrate_fraction=0.5))
    detector.detect(base)
    grey = cv2.cvtColor(255 - base, cv2.COLOR_BGR2GRAY)
    ir_switch = np.asarray(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), np.uint8)
    assert detector.detect(ir_switch) == []
    assert detector.recalibrations == 1
    assert detector.detect(ir_switch) == []  # the new view is the background now
    assert detector.detect(with_object(ir_switch, 500, 300)) != []


def test_grey_frames_and_bad_input() -> None:
    detector = ImprovedMotionDetector(MotionSettings(frame_height=60))
    grey = np.full((120, 160), 100, np.uint8)
    detector.detect(grey)
    moved = grey.copy()
    moved[40:80, 60:100] = 250
    assert detector.detect(moved)
    with pytest.raises(ValueError):
        detector.detect(np.zeros((0, 0, 3), np.uint8))


def test_settings_are_strict() -> None:
    with pytest.raises(ValidationError):
        MotionSettings.model_validate({"treshold": 10})
    with pytest.raises(ValidationError):
        MotionSettings(blur_size=4)
    with pytest.raises(ValidationError):
        MotionSettings.model_validate({"mask": [[[0.0, 0.0], [1.5, 0.0], [0.0, 1.0]]]})
