"""What the staff taught: the confirmed birds' evidence crops and their species, the material of
the station's reference gallery (embedded by `wildwatch gallery build`, which may use the node's
model; central itself loads no model runtime).

A confirmed event teaches the species its reviewer named (`confirmed_species`, box
`confirmed_box`), else the node's own suggestion that the reviewer confirmed, for the event's
first box; the latter only for events whose boxes share one species (observations, motionless
birds: `dataset_formats.one_species`): an abnormal_count or high_risk_species event's species is
one among the frame's birds (the surging or best-scoring one), so its first box may be another
species, and such an event teaches only the box its reviewer named.

The crop is the node's evidence crop of that box: a node saves one crop per detection of the
frame (`<stem>_crop<i>.jpg`, i in frame order) while an event's boxes are the detections
its rule kept, so crop i is box i only when the frame had exactly the event's boxes; other
events are skipped (counted), never guessed.

A motionless bird (and the other rules that follow a track: mortality_cluster, static_object)
may have a box made up from the track when the detector missed the bird in that frame
(edge/rules/mortality.py `_detection_of`): its crop 0 is then another detection's, and the
counts agree by chance when the frame had exactly one. The evidence does not list the frame's
detection boxes, so such an event's crop is checked against its box by geometry: the node cuts
box + CROP_MARGIN of its size on each side (clipped to the frame) from the full-size frame and
stores the frame itself scaled to at most EVIDENCE_MAX_SIDE, so the crop's size must give the
frame's aspect ratio, and when the stored frame was not scaled, its exact size (within the
rounding of the node's cut). A crop that does not fit, or an event whose frame is not stored
to check against, is skipped.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from PIL import Image
from sqlalchemy.orm import Session

from broker.payloads import EVIDENCE_CROP_MARGIN, EVIDENCE_MAX_SIDE, MAX_EVIDENCE
from central.dataset_formats import one_species
from central.db.models import REVIEW_CONFIRMED, Event
from models.species import Catalogue

log = logging.getLogger(__name__)

_CROP = re.compile(r"_crop(\d+)\.jpg$")
# The rules whose box may be made up from a track rather than be a detection of the frame.
TRACK_RULES = frozenset({"motionless_bird", "mortality_cluster", "static_object"})
CROP_MARGIN = EVIDENCE_CROP_MARGIN  # the node's crop is the box and this much around it
_CUT_PX = 2.5  # the node's cut rounds each side outward to whole pixels (int, ceil)


def crop_fits(box: Mapping[str, Any], crop: tuple[int, int], frame: tuple[int, int]) -> bool:
    """Whether a stored crop of size `crop` (w, h) can be the node's crop of the normalised
    `box` on a frame stored at size `frame` (see the module's doc)."""
    try:
        x, y, w, h = (float(box[k]) for k in ("x", "y", "w", "h"))
    except (KeyError, TypeError, ValueError):
        return False
    span_x = min(1.0, x + w * (1 + CROP_MARGIN)) - max(0.0, x - w * CROP_MARGIN)
    span_y = min(1.0, y + h * (1 + CROP_MARGIN)) - max(0.0, y - h * CROP_MARGIN)
    (cw, ch), (fw, fh) = crop, frame
    if min(span_x, span_y, cw, ch, fw, fh) <= 0:
        return False
    if max(fw, fh) < EVIDENCE_MAX_SIDE:  # stored at full size: the cut's size is known
        return abs(cw - span_x * fw) <= _CUT_PX and abs(ch - span_y * fh) <= _CUT_PX
    width, height = cw / span_x, ch / span_y  # the full frame's size the crop implies
    tolerance = _CUT_PX / cw + _CUT_PX / ch + 1 / fw + 1 / fh
    return abs(math.log((width / height) / (fw / fh))) <= tolerance and max(
        width, height
    ) >= EVIDENCE_MAX_SIDE * (1 - tolerance)


@dataclass(frozen=True)
class TaughtCrop:
    """One confirmed crop: the species it shows, its file and where it came from."""

    label: str  # scientific name as the catalogue spells it
    path: Path
    source: str  # "<event id>#<box>"


@dataclass
class Taught:
    """The confirmed crops, and the confirmed events that could not give one (and why)."""

    crops: list[TaughtCrop] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # event id -> reason


def _image_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:
            return image.size
    except OSError:  # gone from the disk, or not an image
        return None


def _crop_mismatch(row: Event, box: int, crop: str, evidence_dir: Path) -> str | None:
    """Why the crop of a track rule's box cannot be taken for that box, else None."""
    name = Path(crop).name
    frame = next((f.path for f in row.evidence if f.name == _CROP.sub(".jpg", name)), None)
    frame_size = _image_size(evidence_dir / frame) if frame is not None else None
    if frame_size is None:
        return f"{row.rule}: its box may be made up from the track; no frame to check crop {name}"
    crop_size = _image_size(evidence_dir / crop)
    if crop_size is None or not crop_fits(row.boxes[box], crop_size, frame_size):
        return f"{row.rule}: crop {name} is not box {box}'s (another detection of the frame)"
    return None


def _cut(row: Event) -> bool:
    """Whether the node's evidence list may have been cut at MAX_EVIDENCE (losing the last
    crops: then more detections than crops, and equal counts prove nothing)."""
    listed = (row.payload or {}).get("evidence") or row.evidence
    return len(listed) >= MAX_EVIDENCE


def _crops(row: Event) -> dict[int, str]:
    """Frame index -> stored path of the event's evidence crops."""
    out = {}
    for file in row.evidence:
        match = _CROP.search(file.name)
        if match:
            out[int(match[1])] = file.path
    return out


def taught_crops(
    *,
    session: Session,
    evidence_dir: Path,
    catalogue: Catalogue,
    sites: Sequence[str] | None = None,
) -> Taught:
    """Every confirmed event's crop of a bird species in the catalogue, oldest first."""
    query = (
        sa.select(Event)
        .where(Event.review_status == REVIEW_CONFIRMED)
        .where(sa.or_(Event.confirmed_species.is_not(None), Event.species_scientific.is_not(None)))
        .order_by(Event.captured_at, Event.id)
    )
    if sites is not None:
        query = query.where(Event.site.in_(list(sites)))
    taught = Taught()
    for row in session.scalars(query):
        name = row.confirmed_species or row.species_scientific or ""
        species = catalogue.get(name)
        box = row.confirmed_box or 0
        crops = _crops(row)
        if species is None or not species.is_bird:
            taught.skipped[row.event_id] = f"{name}: not a bird species of the catalogue"
        elif row.confirmed_species is None and not one_species(row.kind, row.rule):
            taught.skipped[row.event_id] = (
                f"{row.rule}: the node's species is not every box's and no box was named"
            )
        elif _cut(row):
            taught.skipped[row.event_id] = (
                f"{len(row.evidence)} evidence files, the node's most: crops may be missing"
            )
        elif len(crops) != len(row.boxes) or box not in crops:
            taught.skipped[row.event_id] = (
                f"{len(crops)} crops for {len(row.boxes)} boxes: box {box}'s crop is not known"
            )
        elif not (evidence_dir / crops[box]).is_file():
            taught.skipped[row.event_id] = f"crop {crops[box]} missing from the evidence store"
        elif row.rule in TRACK_RULES and (
            why := _crop_mismatch(row, box, crops[box], evidence_dir)
        ):
            taught.skipped[row.event_id] = why
        else:
            path = evidence_dir / crops[box]
            taught.crops.append(TaughtCrop(species.scientific_name, path, f"{row.event_id}#{box}"))
    log.info("%d confirmed crops, %d events skipped", len(taught.crops), len(taught.skipped))
    return taught
