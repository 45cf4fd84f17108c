"""MegaDetector batch output format (JSON) and a flat CSV of detections.

Camera-trap tools (Timelapse, EcoAssist/AddaxAI, the MegaDetector postprocessing scripts) read
the MegaDetector format: `detection_categories` animal/person/vehicle, boxes as normalised
[x, y, width, height] from the top-left corner, and optional per-detection `classifications`.
Our bird and dog detections are MegaDetector animals; their finer category (and a species
when the classifier gave one) goes into `classifications`.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.payloads import Category
from edge.detect import Detection
from edge.export import ImageResult

logger = logging.getLogger(__name__)

FORMAT_VERSION = "1.6"
MD_ANIMAL, MD_PERSON, MD_VEHICLE = "1", "2", "3"
DETECTION_CATEGORIES: dict[str, str] = {
    MD_ANIMAL: "animal",
    MD_PERSON: "person",
    MD_VEHICLE: "vehicle",
}
_MD_CATEGORY: dict[Category, str] = {
    Category.ANIMAL: MD_ANIMAL,
    Category.BIRD: MD_ANIMAL,
    Category.DOG: MD_ANIMAL,
    Category.PERSON: MD_PERSON,
    Category.VEHICLE: MD_VEHICLE,
}
# Our finer animal categories, always first in classification_categories.
FINE_CATEGORIES = (Category.BIRD, Category.DOG)
# Thresholds written into detector_metadata: what a reviewer should start from. They follow
# the detector's per-category defaults (edge.detect) rather than MegaDetector's 0.2 / 0.05.
TYPICAL_THRESHOLD = 0.3
CONSERVATIVE_THRESHOLD = 0.1
BBOX_DIGITS = 4
CONF_DIGITS = 3
CSV_FIELDS = ("file", "category", "label", "confidence", "x", "y", "w", "h", "failure")


def md_category(category: Category) -> str:
    """MegaDetector detection category id of one of our categories."""
    try:
        return _MD_CATEGORY[category]
    except KeyError:
        raise ValueError(f"category {category.value!r} has no MegaDetector equivalent") from None


class _ClassNames:
    """Assigns string ids to classification names in order of first use."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        for cat in FINE_CATEGORIES:
            self.id_of(cat.value)

    def id_of(self, name: str) -> str:
        if name not in self.ids:
            self.ids[name] = str(len(self.ids))
        return self.ids[name]

    def table(self) -> dict[str, str]:
        return {i: name for name, i in self.ids.items()}


def _detection(
    det: Detection, width: int, height: int, classes: _ClassNames, species: list[tuple[str, float]]
) -> dict[str, Any]:
    x, y, w, h = det.normalised(width, height)
    out: dict[str, Any] = {
        "category": md_category(det.category),
        "conf": round(float(det.score), CONF_DIGITS),
        "bbox": [round(v, BBOX_DIGITS) for v in (x, y, w, h)],
    }
    pairs: list[list[Any]] = []
    if species:
        pairs = [[classes.id_of(name), round(float(p), CONF_DIGITS)] for name, p in species]
    elif det.category in FINE_CATEGORIES:
        pairs = [[classes.id_of(det.category.value), round(float(det.score), CONF_DIGITS)]]
    if pairs:
        out["classifications"] = sorted(pairs, key=lambda pair: -float(pair[1]))
    return out


def to_megadetector(
    results: Sequence[ImageResult],
    *,
    detector: str | None = None,
    completed: datetime | None = None,
    classifier: str | None = None,
    typical_threshold: float = TYPICAL_THRESHOLD,
    conservative_threshold: float = CONSERVATIVE_THRESHOLD,
    format_version: str = FORMAT_VERSION,
) -> dict[str, Any]:
    """The MegaDetector batch output document for `results` (pure)."""
    classes = _ClassNames()
    images: list[dict[str, Any]] = []
    models: list[str] = []
    for item in results:
        if item.result is None:
            images.append({"file": item.file, "failure": item.failure, "detections": None})
            continue
        r = item.result
        if r.model not in models:
            models.append(r.model)
        dets = [
            _detection(
                d,
                r.width,
                r.height,
                classes,
                item.classifications[i] if item.classifications else [],
            )
            for i, d in enumerate(r.detections)
        ]
        images.append({"file": item.file, "detections": dets})
    when = completed or datetime.now(UTC)
    info: dict[str, Any] = {
        "format_version": format_version,
        "detector": detector or ("+".join(models) if models else "unknown"),
        "detection_completion_time": when.strftime("%Y-%m-%d %H:%M:%S"),
        "detector_metadata": {
            "typical_detection_threshold": typical_threshold,
            "conservative_detection_threshold": conservative_threshold,
        },
    }
    if classifier is not None:
        info["classifier"] = classifier
        info["classification_completion_time"] = info["detection_completion_time"]
    return {
        "info": info,
        "detection_categories": dict(DETECTION_CATEGORIES),
        "classification_categories": classes.table(),
        "images": images,
    }


def write_megadetector_json(path: Path, results: Sequence[ImageResult], **kwargs: Any) -> None:
    """Write `to_megadetector(results, **kwargs)` to `path` (UTF-8, indented)."""
    document = to_megadetector(results, **kwargs)
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    logger.info("wrote MegaDetector results for %d images to %s", len(results), path)


def csv_rows(results: Sequence[ImageResult]) -> list[dict[str, str]]:
    """One row per detection; one row with empty detection fields per image without any."""
    rows: list[dict[str, str]] = []
    for item in results:
        empty = dict.fromkeys(CSV_FIELDS, "") | {"file": item.file}
        if item.result is None:
            rows.append(empty | {"failure": item.failure or ""})
            continue
        r = item.result
        if not r.detections:
            rows.append(empty)
        for d in r.detections:
            x, y, w, h = d.normalised(r.width, r.height)
            rows.append(
                empty
                | {
                    "category": d.category.value,
                    "label": d.label,
                    "confidence": f"{d.score:.{CONF_DIGITS}f}",
                    "x": f"{x:.{BBOX_DIGITS}f}",
                    "y": f"{y:.{BBOX_DIGITS}f}",
                    "w": f"{w:.{BBOX_DIGITS}f}",
                    "h": f"{h:.{BBOX_DIGITS}f}",
                }
            )
    return rows


def write_csv(path: Path, results: Sequence[ImageResult]) -> None:
    """Write `csv_rows(results)` with a header to `path`."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(csv_rows(results))
