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
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from central.dataset_formats import one_species
from central.db.models import REVIEW_CONFIRMED, Event
from models.species import Catalogue

log = logging.getLogger(__name__)

_CROP = re.compile(r"_crop(\d+)\.jpg$")


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
        elif len(crops) != len(row.boxes) or box not in crops:
            taught.skipped[row.event_id] = (
                f"{len(crops)} crops for {len(row.boxes)} boxes: box {box}'s crop is not known"
            )
        elif not (evidence_dir / crops[box]).is_file():
            taught.skipped[row.event_id] = f"crop {crops[box]} missing from the evidence store"
        else:
            path = evidence_dir / crops[box]
            taught.crops.append(TaughtCrop(species.scientific_name, path, f"{row.event_id}#{box}"))
    log.info("%d confirmed crops, %d events skipped", len(taught.crops), len(taught.skipped))
    return taught
