"""zamba MegadetectorLite back-end: registry entry, decoding, and real camera-trap frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from broker.payloads import Category
from edge.detect import create, detector_settings
from edge.detect.plugins.mdlite import decode_mdlite, mdlite_category
from models.registry import load_labels, load_manifest


def _image(images_dir: Path, name: str) -> np.ndarray:
    image = cv2.imread(str(images_dir / name))
    assert image is not None
    return image


def test_manifest_names_both_sizes_with_licence() -> None:
    manifest = load_manifest()
    for size in (416, 640):
        spec = manifest.get(f"mdlite_yolox_tiny_{size}")
        assert spec.decoder == "mdlite" and spec.licence == "MIT"
        assert spec.input.shape == [1, 3, size, size] and spec.input.colour == "RGB"
        assert "LICENSE-zamba-mdlite.txt" in {a.file for a in spec.files}


def test_decode_turns_centres_into_corners_and_multiplies_scores() -> None:
    raw = np.array([[[100.0, 50.0, 40.0, 20.0, 0.5, 0.8], [10.0, 10.0, -4.0, 2.0, 1.0, 1.0]]])
    boxes, scores = decode_mdlite(raw.astype(np.float32))
    assert boxes[0].tolist() == pytest.approx([80.0, 40.0, 120.0, 60.0])
    assert scores[:, 0].tolist() == pytest.approx([0.4, 1.0])
    assert boxes[1, 2] - boxes[1, 0] == 0.0  # a negative width is clipped, never inverted
    with pytest.raises(ValueError, match="output must be"):
        decode_mdlite(np.zeros((1, 10, 85), dtype=np.float32))
    assert mdlite_category(0) is Category.ANIMAL and mdlite_category(1) is None


@pytest.mark.parametrize("model", ["mdlite_yolox_tiny_416", "mdlite_yolox_tiny_640"])
def test_finds_the_night_opossum_and_nothing_on_the_person(
    model: str, models_dir: Path, images_dir: Path
) -> None:
    settings = detector_settings(backend="mdlite", model=model, ir_enhance="off")
    detector = create(settings, models_dir)
    assert load_labels(model, models_dir) == ["animal"]
    opossum = _image(images_dir, "ct_ena24_2480.jpg")
    result = detector.detect(opossum)
    assert result.model == model
    animals = [d for d in result.detections if d.category is Category.ANIMAL]
    assert animals and animals[0].score > 0.6  # 0.88-0.89 measured; YOLOX-Nano gives 0.27
    h, w = opossum.shape[:2]
    box = animals[0]
    assert 0 <= box.x1 < box.x2 <= w and 0 <= box.y1 < box.y2 <= h
    assert box.label == "animal"
    person = detector.detect(_image(images_dir, "ct_ecoassist_person.jpg"))
    assert not person.detections  # no person class, and the person is not an animal


def test_model_must_match_backend() -> None:
    with pytest.raises(ValueError, match="mdlite"):
        detector_settings(backend="yolox", model="mdlite_yolox_tiny_416")
