"""Builders for rule tests: detections, sightings and classifications in a 1000x1000 frame."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from broker.payloads import Category
from edge.classify import Classification, SpeciesCandidate
from edge.detect import Detection
from edge.rules import Sighting

SH = ZoneInfo("Asia/Shanghai")
SIZE = 1000
T0 = datetime(2026, 11, 21, 8, 0, tzinfo=SH)


def det(
    category: Category, x: float = 400, y: float = 400, w: float = 100, h: float = 80
) -> Detection:
    """A detection with its top-left corner at (x, y) pixels."""
    return Detection(x, y, x + w, y + h, 0.9, 0, category.value, category)


def sighting(
    *dets: Detection,
    minutes: float = 0,
    camera: str = "cam1",
    at: datetime | None = None,
    source: str | None = None,
    species: dict[int, Classification] | None = None,
) -> Sighting:
    """A sighting `minutes` after T0 (or at `at`)."""
    t = at if at is not None else T0 + timedelta(minutes=minutes)
    return Sighting(
        camera=camera,
        captured_at=t,
        detections=list(dets),
        width=SIZE,
        height=SIZE,
        source=source or f"{camera}_{t:%Y%m%d_%H%M%S}.jpg",
        model="test",
        species=species or {},
    )


def classified(scientific: str, chinese: str, english: str, p: float = 0.9) -> Classification:
    """A confident species classification."""
    cand = SpeciesCandidate(scientific, chinese, english, p)
    return Classification(top=[cand], best=cand, uncertain=False, model="test")
