"""The two files of a labelled dataset (central/datasets.py), built from its frames without I/O:
COCO Camera Traps (images, categories, annotations in pixels; LILA's data_management/README) and
MegaDetector batch output carrying the reviewed labels; and the sequences both share."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from broker.payloads import Category
from central import messages
from surveillance.megadetector import (
    BBOX_DIGITS,
    DETECTION_CATEGORIES,
    FINE_CATEGORIES,
    FORMAT_VERSION,
    MD_CATEGORY,
)

# MegaDetector's episode_interval_seconds: frames of one camera at most this far apart are one
# sequence. A camera trap's burst is 1-10 s; a minute joins the bursts of one visit.
SEQUENCE_GAP = timedelta(seconds=60)
EMPTY_ID = 0
EMPTY = "empty"
# The coarse categories a box can have, with fixed ids; species get ids after them, in the
# order of their scientific names (match species across exports by name, not id).
COARSE: tuple[Category, ...] = (
    Category.ANIMAL,
    Category.BIRD,
    Category.DOG,
    Category.PERSON,
    Category.VEHICLE,
)
PIXEL_DIGITS = 1
# The events whose boxes all show the event's one species: an observation (its rule splits a
# frame's boxes by species) and a motionless bird (one bird). Every other rule's boxes may mix
# species: abnormal_count keeps every detection of the category while its species is the one
# whose count surged, high_risk_species every high-risk bird of the zone with the best-scoring
# one's species; a mortality cluster spans deaths of a risk group.
ONE_SPECIES_RULES = frozenset({"motionless_bird"})


def one_species(kind: str, rule: str | None) -> bool:
    """Whether the event's species is the species of every one of its boxes."""
    return (kind == "observation" and rule is None) or rule in ONE_SPECIES_RULES


class Labelling(StrEnum):
    """What the review makes of a frame (images[].wildwatch_review in the COCO CT file)."""

    CONFIRMED = "confirmed"
    BACKGROUND = "dismissed_background"
    WRONG_SPECIES = "dismissed_wrong_species"


@dataclass(frozen=True, slots=True)
class Species:
    """A species label: the scientific name (the category's name) and the Chinese one."""

    scientific: str
    chinese: str


@dataclass(frozen=True, slots=True)
class LabelledBox:
    """One reviewed box, normalised [x, y, w, h] from the top-left corner."""

    category: Category
    x: float
    y: float
    w: float
    h: float
    species: Species | None


@dataclass(frozen=True, slots=True)
class Frame:
    """One image of the dataset: an event's stored frame with its reviewed labels."""

    event_id: str
    site: str
    camera: str
    captured_at: datetime
    source: Path
    file_name: str
    width: int
    height: int
    review: Labelling
    boxes: tuple[LabelledBox, ...]

    @property
    def location(self) -> str:
        return f"{self.site}/{self.camera}"


@dataclass(frozen=True, slots=True)
class SequenceSlot:
    """Where a frame sits in its sequence."""

    seq_id: str
    seq_num_frames: int
    frame_num: int


def sequences(frames: Sequence[Frame], gap: timedelta = SEQUENCE_GAP) -> dict[str, SequenceSlot]:
    """Each frame's sequence (by event id): per location in time order, a frame more than `gap`
    after the previous one starts a new sequence (MegaDetector's create_sequences rule)."""
    by_location: dict[str, list[Frame]] = defaultdict(list)
    for f in frames:
        by_location[f.location].append(f)
    slots: dict[str, SequenceSlot] = {}
    for location, group in by_location.items():
        group.sort(key=lambda f: (f.captured_at, f.event_id))
        runs: list[list[Frame]] = []
        for f in group:
            if runs and f.captured_at - runs[-1][-1].captured_at <= gap:
                runs[-1].append(f)
            else:
                runs.append([f])
        for run in runs:
            seq_id = f"{location}/{run[0].captured_at.strftime('%Y%m%dT%H%M%SZ')}"
            for i, f in enumerate(run):
                slots[f.event_id] = SequenceSlot(seq_id, len(run), i)
    return slots


def pixel_box(box: LabelledBox, width: int, height: int) -> list[float] | None:
    """[x, y, w, h] in absolute pixels (COCO), clipped to the image; None when nothing is left."""
    x1, y1 = min(max(box.x, 0.0), 1.0) * width, min(max(box.y, 0.0), 1.0) * height
    x2 = min(max(box.x + box.w, 0.0), 1.0) * width
    y2 = min(max(box.y + box.h, 0.0), 1.0) * height
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        return None
    return [round(v, PIXEL_DIGITS) for v in (x1, y1, x2 - x1, y2 - y1)]


def _species_list(frames: Iterable[Frame]) -> list[tuple[Species, Category]]:
    """Each species once (by scientific name) with the category of its first box."""
    seen: dict[str, tuple[Species, Category]] = {}
    for f in frames:
        for b in f.boxes:
            if b.species is not None:
                seen.setdefault(b.species.scientific, (b.species, b.category))
    return [seen[k] for k in sorted(seen)]


def local_time(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def coco_camera_traps(
    frames: Sequence[Frame], *, tz: ZoneInfo, info: dict[str, Any]
) -> dict[str, Any]:
    """The COCO Camera Traps database of `frames` (LILA's data_management/README format)."""
    categories: list[dict[str, Any]] = [{"id": EMPTY_ID, "name": EMPTY, "name_zh": "空"}]
    coarse_id = {c: i + 1 for i, c in enumerate(COARSE)}
    categories += [
        {"id": coarse_id[c], "name": c.value, "name_zh": messages.category_zh(c)} for c in COARSE
    ]
    species_id: dict[str, int] = {}
    for species, category in _species_list(frames):
        species_id[species.scientific] = len(categories)
        categories.append(
            {
                "id": len(categories),
                "name": species.scientific,
                "name_zh": species.chinese,
                "supercategory": category.value,
            }
        )
    slots = sequences(frames)
    images, annotations = [], []
    for f in frames:
        slot = slots[f.event_id]
        images.append(
            {
                "id": f.event_id,
                "file_name": f.file_name,
                "width": f.width,
                "height": f.height,
                "datetime": local_time(f.captured_at, tz),
                "location": f.location,
                "seq_id": slot.seq_id,
                "seq_num_frames": slot.seq_num_frames,
                "frame_num": slot.frame_num,
                "wildwatch_review": f.review.value,
            }
        )
        if not f.boxes:
            annotations.append(
                {"id": f"{f.event_id}_empty", "image_id": f.event_id, "category_id": EMPTY_ID}
            )
        for i, b in enumerate(f.boxes):
            bbox = pixel_box(b, f.width, f.height)
            if bbox is None:
                continue
            category_id = species_id[b.species.scientific] if b.species else coarse_id[b.category]
            annotations.append(
                {
                    "id": f"{f.event_id}_{i}",
                    "image_id": f.event_id,
                    "category_id": category_id,
                    "bbox": bbox,
                    "sequence_level_annotation": False,
                }
            )
    return {"info": info, "images": images, "categories": categories, "annotations": annotations}


def megadetector(frames: Sequence[Frame], *, tz: ZoneInfo, info: dict[str, Any]) -> dict[str, Any]:
    """The MegaDetector batch output of `frames` with the reviewed labels: every kept box at
    confidence 1.0, birds and dogs classified as such and species by name, background frames
    without detections."""
    classes = {str(i + 1): c.value for i, c in enumerate(FINE_CATEGORIES)}
    fine_id = {c: str(i + 1) for i, c in enumerate(FINE_CATEGORIES)}
    species_id: dict[str, str] = {}
    for species, _ in _species_list(frames):
        species_id[species.scientific] = str(len(classes) + 1)
        classes[species_id[species.scientific]] = species.scientific
    images = []
    for f in frames:
        detections = []
        for b in f.boxes:
            det: dict[str, Any] = {
                "category": MD_CATEGORY[b.category],
                "conf": 1.0,
                "bbox": [round(v, BBOX_DIGITS) for v in (b.x, b.y, b.w, b.h)],
            }
            labels = [[fine_id[b.category], 1.0]] if b.category in fine_id else []
            if b.species is not None:
                labels.append([species_id[b.species.scientific], 1.0])
            if labels:
                det["classifications"] = labels
            detections.append(det)
        images.append(
            {
                "file": f.file_name,
                "datetime": local_time(f.captured_at, tz),
                "detections": detections,
                "max_detection_conf": 1.0 if detections else 0.0,
            }
        )
    md_info = {
        "format_version": FORMAT_VERSION,
        "detector": "wildwatch-reviewed-labels",
        "detection_completion_time": info["date_created"],
        "classifier": "wildwatch-reviewed-labels",
        "classification_completion_time": info["date_created"],
        "description": info["description"],
    }
    return {
        "info": md_info,
        "detection_categories": DETECTION_CATEGORIES,
        "classification_categories": classes,
        "images": images,
    }
