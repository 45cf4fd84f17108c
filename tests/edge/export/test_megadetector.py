"""MegaDetector batch output and CSV export, checked against the format's rules."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import pytest

from broker.payloads import Category
from edge.detect import Detection, DetectionResult, DetectorSettings, create
from edge.export import ImageResult
from edge.export.megadetector import (
    DETECTION_CATEGORIES,
    to_megadetector,
    write_csv,
    write_megadetector_json,
)


def _result(*dets: Detection) -> DetectionResult:
    return DetectionResult(list(dets), width=200, height=100, model="m", inference_ms=1.0)


BIRD = Detection(20, 10, 60, 50, 0.91, 14, "bird", Category.BIRD)
DOG = Detection(100, 0, 250, 120, 0.5, 16, "dog", Category.DOG)  # runs off the image
PERSON = Detection(0, 0, 10, 10, 0.4, 0, "person", Category.PERSON)


def check_format(doc: dict[str, Any]) -> None:
    """The structural rules of the MegaDetector batch output format."""
    assert set(doc) >= {"info", "detection_categories", "images"}
    info = doc["info"]
    assert info["format_version"].startswith("1.")
    assert {"detector", "detection_completion_time", "detector_metadata"} <= set(info)
    meta = info["detector_metadata"]
    assert 0 <= meta["conservative_detection_threshold"] <= meta["typical_detection_threshold"]
    assert doc["detection_categories"] == DETECTION_CATEGORIES
    classes = doc.get("classification_categories", {})
    assert all(isinstance(k, str) for k in classes)
    for image in doc["images"]:
        assert isinstance(image["file"], str) and not image["file"].startswith("/")
        if "failure" in image:
            assert isinstance(image["failure"], str) and image["detections"] is None
            continue
        for det in image["detections"]:
            assert det["category"] in doc["detection_categories"]
            assert 0.0 <= det["conf"] <= 1.0
            x, y, w, h = det["bbox"]
            assert all(0.0 <= v <= 1.0 for v in (x, y, w, h))
            assert x + w <= 1.0 + 1e-6 and y + h <= 1.0 + 1e-6
            for class_id, conf in det.get("classifications", []):
                assert class_id in classes and 0.0 <= conf <= 1.0


def test_document_follows_the_format() -> None:
    results = [
        ImageResult(
            "a/bird.jpg", _result(BIRD, PERSON), classifications=[[("Corvus corax", 0.7)], []]
        ),
        ImageResult("dog.jpg", _result(DOG)),
        ImageResult("empty.jpg", _result()),
        ImageResult("broken.jpg", None, failure="truncated JPEG"),
    ]
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    doc = to_megadetector(results, completed=when, classifier="inat_bird")
    check_format(doc)
    assert doc["info"]["detection_completion_time"] == "2024-05-01 12:00:00"
    bird, person = doc["images"][0]["detections"]
    assert bird["category"] == "1" and person["category"] == "2"
    assert bird["bbox"] == [0.1, 0.1, 0.2, 0.4]
    names = doc["classification_categories"]
    assert names[bird["classifications"][0][0]] == "Corvus corax"
    assert "classifications" not in person
    dog = doc["images"][1]["detections"][0]
    assert dog["category"] == "1" and names[dog["classifications"][0][0]] == "dog"
    assert dog["bbox"][0] + dog["bbox"][2] == pytest.approx(1.0)
    assert doc["images"][2]["detections"] == []
    assert doc["images"][3] == {
        "file": "broken.jpg",
        "failure": "truncated JPEG",
        "detections": None,
    }


def test_image_result_checks_its_fields() -> None:
    with pytest.raises(ValueError):
        ImageResult("x.jpg", None)
    with pytest.raises(ValueError):
        ImageResult("x.jpg", _result(BIRD), failure="both")
    with pytest.raises(ValueError):
        ImageResult("x.jpg", _result(BIRD), classifications=[[], []])


def test_writers_on_real_detections(tmp_path: Path, models_dir: Path, images_dir: Path) -> None:
    detector = create(DetectorSettings(), models_dir)
    results = []
    for name in ("bird_coral_bird.jpg", "ct_ecoassist_empty_night.jpg"):
        image = cv2.imread(str(images_dir / name))
        results.append(ImageResult(name, detector.detect(image)))
    results.append(ImageResult("gone.jpg", None, failure="cannot read"))
    out = tmp_path / "md.json"
    write_megadetector_json(out, results)
    doc = json.loads(out.read_text(encoding="utf-8"))
    check_format(doc)
    assert any(d["category"] == "1" for d in doc["images"][0]["detections"])
    table = tmp_path / "det.csv"
    write_csv(table, results)
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    assert {"file", "category", "confidence", "x", "y", "w", "h"} <= set(rows[0])
    files = [r["file"] for r in rows]
    assert set(files) == {"bird_coral_bird.jpg", "ct_ecoassist_empty_night.jpg", "gone.jpg"}
    assert any(r["category"] == "bird" for r in rows)
    gone = [r for r in rows if r["file"] == "gone.jpg"]
    assert len(gone) == 1 and gone[0]["category"] == "" and gone[0]["failure"] == "cannot read"
    for r in rows:
        if r["category"]:
            assert all(0.0 <= float(r[k]) <= 1.0 for k in ("x", "y", "w", "h", "confidence"))
