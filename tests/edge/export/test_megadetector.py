"""MegaDetector batch output and CSV export, checked against the format's rules."""

from __future__ import annotations

import csv
import json
import logging
import random
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import pytest

from broker.payloads import Category
from edge.detect import Detection, DetectionResult, DetectorSettings, create
from edge.export import ImageResult
from edge.export.megadetector import (
    CATEGORY_THRESHOLDS_KEY,
    CsvWriter,
    MegaDetectorWriter,
    csv_rows,
    floor_conf,
    pipeline_thresholds,
    round_conf,
    to_megadetector,
    write_csv,
    write_megadetector_json,
)
from surveillance.megadetector import CONF_DIGITS, DETECTION_CATEGORIES, SPECIES_FLOOR


def _result(*dets: Detection) -> DetectionResult:
    return DetectionResult(list(dets), width=200, height=100, model="m", inference_ms=1.0)


BIRD = Detection(20, 10, 60, 50, 0.91, 14, "bird", Category.BIRD)
DOG = Detection(100, 0, 250, 120, 0.5, 16, "dog", Category.DOG)  # runs off the image
PERSON = Detection(0, 0, 10, 10, 0.4, 0, "person", Category.PERSON)
ANIMAL = Detection(0, 0, 50, 50, 0.21, 21, "bear", Category.ANIMAL)
THRESHOLDS = {
    Category.ANIMAL: 0.2,
    Category.BIRD: 0.4,
    Category.DOG: 0.2,
    Category.PERSON: 0.3,
    Category.VEHICLE: 0.3,
}
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def check_format(doc: dict[str, Any]) -> None:
    """The structural rules of the MegaDetector batch output format, and ours on top."""
    assert set(doc) >= {"info", "detection_categories", "images"}
    info = doc["info"]
    assert info["format_version"].startswith("1.")
    assert {"detector", "detection_completion_time", "detector_metadata"} <= set(info)
    meta = info["detector_metadata"]
    typical = meta["typical_detection_threshold"]
    assert 0 <= meta["conservative_detection_threshold"] <= typical
    assert typical <= min(meta[CATEGORY_THRESHOLDS_KEY].values())
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
            assert isinstance(det["conf"], float) and typical <= det["conf"] <= 1.0
            x, y, w, h = det["bbox"]
            assert all(0.0 <= v <= 1.0 for v in (x, y, w, h))
            assert x + w <= 1.0 + 1e-6 and y + h <= 1.0 + 1e-6
            pairs = det.get("classifications", [])
            assert [p for _, p in pairs] == sorted((p for _, p in pairs), reverse=True)
            for class_id, conf in pairs:
                assert class_id in classes and 0.0 <= conf <= 1.0


def validate_with_megadetector(doc: dict[str, Any]) -> None:
    """MegaDetector's own validator (`pip install --no-deps megadetector`, see the README)."""
    vbr = pytest.importorskip("megadetector.postprocessing.validate_batch_results")
    report = vbr.validate_batch_results(doc)["validation_results"]
    assert report["errors"] == [] and report["warnings"] == [], report


def _classes(doc: dict[str, Any], det: dict[str, Any]) -> list[tuple[str, float]]:
    names = doc["classification_categories"]
    return [(names[i], p) for i, p in det.get("classifications", [])]


def test_document_follows_the_format() -> None:
    results = [
        ImageResult(
            "a/bird.jpg", _result(BIRD, PERSON), classifications=[[("Corvus corax", 0.7)], []]
        ),
        ImageResult("dog.jpg", _result(DOG)),
        ImageResult("empty.jpg", _result()),
        ImageResult("broken.jpg", None, failure="truncated JPEG"),
    ]
    doc = to_megadetector(results, thresholds=THRESHOLDS, completed=WHEN, classifier="inat_bird")
    check_format(doc)
    validate_with_megadetector(doc)
    assert doc["info"]["detection_completion_time"] == "2024-05-01 12:00:00"
    assert doc["info"]["classifier"] == "inat_bird"
    bird, person = doc["images"][0]["detections"]
    assert bird["category"] == "1" and person["category"] == "2"
    assert bird["bbox"] == [0.1, 0.1, 0.2, 0.4]
    # the fine category with the detection's confidence, then the species
    assert _classes(doc, bird) == [("bird", 0.91), ("Corvus corax", 0.7)]
    assert "classifications" not in person
    dog = doc["images"][1]["detections"][0]
    assert dog["category"] == "1" and _classes(doc, dog) == [("dog", 0.5)]
    assert dog["bbox"][0] + dog["bbox"][2] == pytest.approx(1.0)
    assert doc["images"][2]["detections"] == []
    assert doc["images"][3] == {
        "file": "broken.jpg",
        "failure": "truncated JPEG",
        "detections": None,
    }
    assert list(doc["classification_categories"].values())[:2] == ["bird", "dog"]


def test_species_below_the_floor_are_not_written() -> None:
    """The user's report: a bird exported with only 0.001 species lost its `bird`."""
    noise = [("Anser anser", 0.0013), ("Grus grus", 0.0007), ("Halcyon smyrnensis", 0.0007)]
    edge = [("Ardea cinerea", SPECIES_FLOOR), ("Fulica atra", SPECIES_FLOOR - 0.001)]
    bird2 = Detection(100, 10, 140, 50, 0.45, 14, "bird", Category.BIRD)
    results = [
        ImageResult("noise.jpg", _result(BIRD), classifications=[noise]),
        ImageResult("edge.jpg", _result(bird2), classifications=[edge]),
    ]
    doc = to_megadetector(results, thresholds=THRESHOLDS)
    check_format(doc)
    assert _classes(doc, doc["images"][0]["detections"][0]) == [("bird", 0.91)]
    assert _classes(doc, doc["images"][1]["detections"][0]) == [
        ("bird", 0.45),
        ("Ardea cinerea", SPECIES_FLOOR),
    ]
    names = set(doc["classification_categories"].values())
    assert names == {"bird", "dog", "Ardea cinerea"}  # no table entry for dropped species
    assert doc["info"]["classifier_metadata"] == {"species_probability_floor": SPECIES_FLOOR}
    # a confident species outranks the detection's confidence
    sure = to_megadetector(
        [ImageResult("s.jpg", _result(bird2), classifications=[[("Pica pica", 0.8)]])],
        thresholds=THRESHOLDS,
    )
    assert _classes(sure, sure["images"][0]["detections"][0]) == [
        ("Pica pica", 0.8),
        ("bird", 0.45),
    ]


def test_thresholds_written_are_the_pipelines() -> None:
    doc = to_megadetector([ImageResult("a.jpg", _result(ANIMAL, PERSON))], thresholds=THRESHOLDS)
    meta = doc["info"]["detector_metadata"]
    assert meta["typical_detection_threshold"] == 0.2
    assert meta["conservative_detection_threshold"] == 0.2  # nothing below it was kept
    assert meta[CATEGORY_THRESHOLDS_KEY] == {c.value: t for c, t in THRESHOLDS.items()}
    # without thresholds: the detector's defaults, the same as pipeline_thresholds()
    default = to_megadetector([])["info"]["detector_metadata"]
    settings = DetectorSettings()
    assert default[CATEGORY_THRESHOLDS_KEY] == {
        c.value: settings.threshold_for(c) for c in THRESHOLDS
    }
    assert default["typical_detection_threshold"] == min(pipeline_thresholds().values())
    # a person-only configuration: typical follows the lowest category threshold
    strict = dict.fromkeys(THRESHOLDS, 0.6) | {Category.PERSON: 0.35}
    meta = to_megadetector([], thresholds=strict)["info"]["detector_metadata"]
    assert meta["typical_detection_threshold"] == 0.35
    with pytest.raises(ValueError):
        to_megadetector([], thresholds={})
    with pytest.raises(ValueError):
        to_megadetector([], thresholds={Category.CAMERA: 0.5})


def test_rounding_never_drops_a_kept_detection_below_the_thresholds() -> None:
    """Thresholds with more digits than CONF_DIGITS are written rounded down; a score at the
    threshold must still read as kept at the typical and at its category's threshold."""
    rng = random.Random(7)
    for _ in range(2000):
        t = rng.uniform(0.05, 0.95)
        thresholds = dict.fromkeys(THRESHOLDS, 0.95) | {Category.ANIMAL: t, Category.BIRD: t}
        score = t + rng.choice([0.0, 1e-9, 4e-4, 5e-4, 6e-4, rng.uniform(0, 0.01)])
        det = Detection(0, 0, 10, 10, min(score, 1.0), 14, "bird", Category.BIRD)
        doc = to_megadetector([ImageResult("x.jpg", _result(det))], thresholds=thresholds)
        meta = doc["info"]["detector_metadata"]
        written = doc["images"][0]["detections"][0]
        assert written["conf"] >= meta["typical_detection_threshold"]
        assert written["conf"] >= meta[CATEGORY_THRESHOLDS_KEY]["bird"]
        assert meta["typical_detection_threshold"] <= t
    assert floor_conf(0.2345) == 0.234 and floor_conf(0.2) == 0.2 and floor_conf(0.57) == 0.57
    assert round_conf(0.23449) == 0.234 and len(str(round_conf(1 / 3))) == CONF_DIGITS + 2


def test_detection_below_the_given_thresholds_lowers_typical(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Wrong thresholds wired in: the file still shows every detection the pipeline kept."""
    weak = Detection(0, 0, 10, 10, 0.12, 0, "person", Category.PERSON)
    with caplog.at_level(logging.WARNING, logger="edge.export.megadetector"):
        doc = to_megadetector([ImageResult("w.jpg", _result(weak))], thresholds=THRESHOLDS)
    assert doc["info"]["detector_metadata"]["typical_detection_threshold"] == 0.12
    assert "below the person threshold" in caplog.text


def test_image_result_checks_its_fields() -> None:
    with pytest.raises(ValueError):
        ImageResult("x.jpg", None)
    with pytest.raises(ValueError):
        ImageResult("x.jpg", _result(BIRD), failure="both")
    with pytest.raises(ValueError):
        ImageResult("x.jpg", _result(BIRD), classifications=[[], []])


def _many(n: int) -> Iterator[ImageResult]:
    for i in range(n):
        if i % 97 == 0:
            yield ImageResult(f"d{i // 1000}/img_{i:05d}.jpg", None, failure="cannot read")
        elif i % 3 == 0:
            yield ImageResult(
                f"d{i // 1000}/img_{i:05d}.jpg",
                _result(BIRD, ANIMAL),
                classifications=[[(f"Species {i % 50}", 0.6), ("Noise", 0.01)], []],
            )
        else:
            yield ImageResult(f"d{i // 1000}/img_{i:05d}.jpg", _result(DOG, PERSON))


def test_streaming_writer_equals_the_pure_document(tmp_path: Path) -> None:
    out = tmp_path / "md.json"
    kwargs: dict[str, Any] = {"thresholds": THRESHOLDS, "completed": WHEN, "classifier": "c"}
    with MegaDetectorWriter(out, **kwargs) as writer:
        for item in _many(300):
            writer.add(item)
    assert writer.count == 300
    assert json.loads(out.read_text(encoding="utf-8")) == to_megadetector(_many(300), **kwargs)
    empty = tmp_path / "empty.json"
    write_megadetector_json(empty, [], thresholds=THRESHOLDS, completed=WHEN)
    assert json.loads(empty.read_text(encoding="utf-8")) == to_megadetector(
        [], thresholds=THRESHOLDS, completed=WHEN
    )
    validate_with_megadetector(json.loads(out.read_text(encoding="utf-8")))


def test_writers_leave_no_half_written_file(tmp_path: Path) -> None:
    md, table = tmp_path / "md.json", tmp_path / "det.csv"
    with pytest.raises(RuntimeError), MegaDetectorWriter(md) as writer, CsvWriter(table) as rows:
        for item in _many(10):
            writer.add(item)
            rows.add(item)
        raise RuntimeError("scan interrupted")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        MegaDetectorWriter(md).add(next(_many(1)))


def test_streaming_writers_keep_memory_flat(tmp_path: Path) -> None:
    """10,000 images: the writers hold one image at a time, not the folder."""
    n = 10_000
    tracemalloc.start()
    try:
        with (
            MegaDetectorWriter(tmp_path / "md.json", thresholds=THRESHOLDS) as writer,
            CsvWriter(tmp_path / "det.csv") as rows,
        ):
            for item in _many(n):
                writer.add(item)
                rows.add(item)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = (tmp_path / "md.json").stat().st_size
    assert size > 1_000_000 and peak < 1_000_000, (size, peak)  # the file is far bigger
    doc = json.loads((tmp_path / "md.json").read_text(encoding="utf-8"))
    assert len(doc["images"]) == n and len(doc["classification_categories"]) == 2 + 50
    with (tmp_path / "det.csv").open(encoding="utf-8") as f:
        assert sum(1 for _ in csv.DictReader(f)) == len(csv_rows(_many(n)))


def test_writers_on_real_detections(tmp_path: Path, models_dir: Path, images_dir: Path) -> None:
    settings = DetectorSettings()
    detector = create(settings, models_dir)
    results = []
    for name in ("bird_coral_bird.jpg", "ct_ecoassist_empty_night.jpg"):
        image = cv2.imread(str(images_dir / name))
        assert image is not None
        results.append(ImageResult(name, detector.detect(image)))
    results.append(ImageResult("gone.jpg", None, failure="cannot read"))
    out = tmp_path / "md.json"
    write_megadetector_json(out, results, thresholds=pipeline_thresholds(settings))
    doc = json.loads(out.read_text(encoding="utf-8"))
    check_format(doc)
    validate_with_megadetector(doc)
    birds = [d for d in doc["images"][0]["detections"] if ("bird", d["conf"]) in _classes(doc, d)]
    assert birds and all(d["category"] == "1" for d in birds)
    table = tmp_path / "det.csv"
    write_csv(table, results)
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    assert rows == csv_rows(results)
    assert {"file", "category", "confidence", "x", "y", "w", "h"} <= set(rows[0])
    files = [r["file"] for r in rows]
    assert set(files) == {"bird_coral_bird.jpg", "ct_ecoassist_empty_night.jpg", "gone.jpg"}
    assert any(r["category"] == "bird" for r in rows)
    gone = [r for r in rows if r["file"] == "gone.jpg"]
    assert len(gone) == 1 and gone[0]["category"] == "" and gone[0]["failure"] == "cannot read"
    for r in rows:
        if r["category"]:
            assert all(0.0 <= float(r[k]) <= 1.0 for k in ("x", "y", "w", "h", "confidence"))
