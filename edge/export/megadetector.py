"""MegaDetector batch output format (JSON) and a flat CSV of detections.

Camera-trap tools (Timelapse, EcoAssist/AddaxAI, the MegaDetector postprocessing scripts) read
the MegaDetector format: `detection_categories` animal/person/vehicle, boxes as normalised
[x, y, width, height] from the top-left corner, and optional per-detection `classifications`.

What the file says, so that a tool reading it sees what the pipeline decided:

- Our bird and dog detections are MegaDetector animals. Each carries its fine category
  (`bird` / `dog`, the first entries of `classification_categories`) as a classification with
  the detection's own confidence. A bird box the detector kept only as an animal (below the
  bird threshold) has no `bird` classification, as in the events.
- A species from the classifier is added to a detection's classifications only at
  SPECIES_FLOOR or above: below it the (uint8) classifier's output is noise, not a candidate.
- The file holds only the detections the pipeline kept. `info.detector_metadata` lists the
  thresholds it used per category (`category_thresholds`: animal/person/vehicle as detection
  categories, bird/dog as classification names) and a `typical_detection_threshold` at or
  below every written `conf`, so a tool that keeps detections at `conf >= typical` (Timelapse
  does) keeps exactly the pipeline's detections. Thresholds are written rounded down to
  CONF_DIGITS, so rounding a kept detection's conf can never put it below them.

`to_megadetector` builds the whole document in memory (small batches, tests);
`MegaDetectorWriter` and `CsvWriter` stream one image at a time, for folders of any size.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from broker.payloads import Category
from edge.detect import Detection, DetectorSettings
from edge.export import ImageResult
from surveillance.megadetector import (
    BBOX_DIGITS,
    CONF_DIGITS,
    DETECTION_CATEGORIES,
    DETECTION_KINDS,
    FINE_CATEGORIES,
    FORMAT_VERSION,
    SPECIES_FLOOR,
    md_category,
)

logger = logging.getLogger(__name__)

# Key under info.detector_metadata with the per-category thresholds the pipeline applied.
CATEGORY_THRESHOLDS_KEY = "category_thresholds"
CSV_FIELDS = ("file", "category", "label", "confidence", "x", "y", "w", "h", "failure")


def pipeline_thresholds(settings: DetectorSettings | None = None) -> dict[Category, float]:
    """The score threshold the detector applies to each detection category (`settings`, or
    the detector's defaults): what the writers need to describe the pipeline's decisions."""
    s = settings if settings is not None else DetectorSettings()
    return {c: s.threshold_for(c) for c in DETECTION_KINDS}


def round_conf(value: float) -> float:
    """A confidence as written to the file (rounded to CONF_DIGITS)."""
    return round(float(value), CONF_DIGITS)


def floor_conf(value: float) -> float:
    """`value` rounded down to CONF_DIGITS: a threshold that no kept detection's written
    `conf` falls below (a score >= t rounds to a value >= t rounded down, t on the grid)."""
    step = Decimal(1).scaleb(-CONF_DIGITS)
    return float(Decimal(repr(float(value))).quantize(step, rounding=ROUND_FLOOR))


def _checked(thresholds: Mapping[Category, float] | None) -> dict[Category, float]:
    out = dict(pipeline_thresholds() if thresholds is None else thresholds)
    if not out:
        raise ValueError("no detection thresholds given")
    for category, value in out.items():
        md_category(category)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"threshold of {category.value} must be in [0, 1], got {value}")
    return out


class _Document:
    """What one MegaDetector file accumulates besides its images: small, whatever the count."""

    def __init__(self, thresholds: Mapping[Category, float] | None) -> None:
        self.thresholds = _checked(thresholds)
        self.written = {c: floor_conf(t) for c, t in self.thresholds.items()}
        self.ids: dict[str, str] = {}
        for cat in FINE_CATEGORIES:
            self._id_of(cat.value)
        self.models: list[str] = []
        self.images = 0
        self.lowest: float | None = None  # lowest conf written
        self.species = False
        self._warned: set[Category] = set()

    def _id_of(self, name: str) -> str:
        if name not in self.ids:
            self.ids[name] = str(len(self.ids))
        return self.ids[name]

    def image(self, item: ImageResult) -> dict[str, Any]:
        """The `images` entry of one result."""
        self.images += 1
        if item.result is None:
            return {"file": item.file, "failure": item.failure, "detections": None}
        r = item.result
        if r.model not in self.models:
            self.models.append(r.model)
        dets = [
            self._detection(
                d, r.width, r.height, item.classifications[i] if item.classifications else []
            )
            for i, d in enumerate(r.detections)
        ]
        return {"file": item.file, "detections": dets}

    def _detection(
        self, det: Detection, width: int, height: int, species: Iterable[tuple[str, float]]
    ) -> dict[str, Any]:
        x, y, w, h = det.normalised(width, height)
        c = round_conf(det.score)
        out: dict[str, Any] = {
            "category": md_category(det.category),
            "conf": c,
            "bbox": [round(v, BBOX_DIGITS) for v in (x, y, w, h)],
        }
        self._check_kept(det, c)
        pairs: list[list[Any]] = []
        if det.category in FINE_CATEGORIES:
            pairs.append([self._id_of(det.category.value), c])
        for name, p in species:
            if p >= SPECIES_FLOOR:
                pairs.append([self._id_of(name), round_conf(p)])
                self.species = True
        if pairs:
            # best first; on a tie the fine category (added first) stays first
            out["classifications"] = sorted(pairs, key=lambda pair: -float(pair[1]))
        return out

    def _check_kept(self, det: Detection, written: float) -> None:
        self.lowest = written if self.lowest is None else min(self.lowest, written)
        threshold = self.thresholds.get(det.category)
        if threshold is not None and det.score < threshold and det.category not in self._warned:
            self._warned.add(det.category)
            logger.warning(
                "a %s detection at %.3f is below the %s threshold %.3f given to the export: "
                "the thresholds are not the detector's; typical_detection_threshold is lowered",
                det.category.value,
                det.score,
                det.category.value,
                threshold,
            )

    def typical(self) -> float:
        """The threshold at which a tool keeps every written detection, i.e. the pipeline's."""
        lowest = min(self.written.values())
        return lowest if self.lowest is None else min(lowest, self.lowest)

    def tables(
        self,
        *,
        detector: str | None,
        completed: datetime | None,
        classifier: str | None,
        format_version: str,
    ) -> dict[str, Any]:
        """Everything but `images`."""
        when = (completed or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S")
        typical = self.typical()
        info: dict[str, Any] = {
            "format_version": format_version,
            "detector": detector or ("+".join(self.models) if self.models else "unknown"),
            "detection_completion_time": when,
            "detector_metadata": {
                "typical_detection_threshold": typical,
                # only what the pipeline kept is in the file: a lower threshold shows no more
                "conservative_detection_threshold": typical,
                CATEGORY_THRESHOLDS_KEY: {c.value: t for c, t in self.written.items()},
            },
        }
        if classifier is not None:
            info["classifier"] = classifier
            info["classification_completion_time"] = when
        if classifier is not None or self.species:
            info["classifier_metadata"] = {"species_probability_floor": SPECIES_FLOOR}
        return {
            "info": info,
            "detection_categories": dict(DETECTION_CATEGORIES),
            "classification_categories": {i: name for name, i in self.ids.items()},
        }


def to_megadetector(
    results: Iterable[ImageResult],
    *,
    thresholds: Mapping[Category, float] | None = None,
    detector: str | None = None,
    completed: datetime | None = None,
    classifier: str | None = None,
    format_version: str = FORMAT_VERSION,
) -> dict[str, Any]:
    """The MegaDetector batch output document for `results` (pure).

    `thresholds` are the detector's per-category score thresholds (`pipeline_thresholds(
    config.detector)`; default: the detector's default settings).
    """
    doc = _Document(thresholds)
    images = [doc.image(item) for item in results]
    tables = doc.tables(
        detector=detector, completed=completed, classifier=classifier, format_version=format_version
    )
    return {**tables, "images": images}


class _AtomicText:
    """A text file written under a temporary name and moved into place only on success."""

    def __init__(self, path: Path, newline: str | None = None) -> None:
        self.path = Path(path)
        self.newline = newline
        self._tmp: Path | None = None
        self.file: IO[str] | None = None

    def open(self) -> IO[str]:
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        self._tmp = Path(name)
        self.file = os.fdopen(fd, "w", encoding="utf-8", newline=self.newline)
        return self.file

    def close(self, ok: bool) -> None:
        if self.file is None or self._tmp is None:
            return
        self.file.close()
        if ok:
            os.chmod(self._tmp, 0o644)  # mkstemp makes it 0600; others read exports
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)
        self.file = None


class MegaDetectorWriter:
    """Writes a MegaDetector batch file one image at a time, in constant memory.

    Use as a context manager: `add` each ImageResult as it is decided; the info and category
    tables are written after the images when the block ends. The file appears at `path` only
    when the block ends without an exception (no half-written file for a tool to read).
    """

    def __init__(
        self,
        path: Path,
        *,
        thresholds: Mapping[Category, float] | None = None,
        detector: str | None = None,
        classifier: str | None = None,
        completed: datetime | None = None,
        format_version: str = FORMAT_VERSION,
    ) -> None:
        self.path = Path(path)
        self._doc = _Document(thresholds)
        self._options: dict[str, Any] = {
            "detector": detector,
            "classifier": classifier,
            "completed": completed,
            "format_version": format_version,
        }
        self._out = _AtomicText(self.path)
        self._file: IO[str] | None = None

    @property
    def count(self) -> int:
        """Images added so far."""
        return self._doc.images

    def __enter__(self) -> MegaDetectorWriter:
        self._file = self._out.open()
        self._file.write('{\n "images": [')
        return self

    def add(self, item: ImageResult) -> None:
        """Append one image's entry to the file."""
        if self._file is None:
            raise RuntimeError("MegaDetectorWriter.add outside its with block")
        first = self._doc.images == 0
        entry = json.dumps(self._doc.image(item), ensure_ascii=False)
        self._file.write(("\n  " if first else ",\n  ") + entry)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ok = exc_type is None and self._file is not None
        try:
            if ok and self._file is not None:
                tables = self._doc.tables(**self._options)
                self._file.write("\n ]")
                for key, value in tables.items():
                    self._file.write(f",\n {json.dumps(key)}: ")
                    text = json.dumps(value, indent=1, ensure_ascii=False)
                    self._file.write(text.replace("\n", "\n "))
                self._file.write("\n}\n")
        except BaseException:
            ok = False
            raise
        finally:
            self._out.close(ok)
            self._file = None
        if ok:
            logger.info("wrote MegaDetector results for %d images to %s", self.count, self.path)


def write_megadetector_json(path: Path, results: Iterable[ImageResult], **kwargs: Any) -> None:
    """Write `to_megadetector(results, **kwargs)` to `path`, streaming (see MegaDetectorWriter)."""
    with MegaDetectorWriter(path, **kwargs) as writer:
        for item in results:
            writer.add(item)


def csv_rows(results: Iterable[ImageResult]) -> list[dict[str, str]]:
    """One row per detection; one row with empty detection fields per image without any."""
    return [row for item in results for row in _rows(item)]


def _rows(item: ImageResult) -> list[dict[str, str]]:
    empty = dict.fromkeys(CSV_FIELDS, "") | {"file": item.file}
    if item.result is None:
        return [empty | {"failure": item.failure or ""}]
    r = item.result
    if not r.detections:
        return [empty]
    rows = []
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


class CsvWriter:
    """Writes the detections CSV one image at a time (header first), in constant memory; the
    file appears at `path` only when the with block ends without an exception."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._out = _AtomicText(self.path, newline="")
        self._writer: csv.DictWriter[str] | None = None
        self.count = 0

    def __enter__(self) -> CsvWriter:
        self._writer = csv.DictWriter(self._out.open(), fieldnames=CSV_FIELDS)
        self._writer.writeheader()
        return self

    def add(self, item: ImageResult) -> None:
        """Append one image's rows."""
        if self._writer is None:
            raise RuntimeError("CsvWriter.add outside its with block")
        self._writer.writerows(_rows(item))
        self.count += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._out.close(exc_type is None)
        self._writer = None


def write_csv(path: Path, results: Iterable[ImageResult]) -> None:
    """Write `csv_rows(results)` with a header to `path`, streaming (see CsvWriter)."""
    with CsvWriter(path) as writer:
        for item in results:
            writer.add(item)
