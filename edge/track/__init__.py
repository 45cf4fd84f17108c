"""Tracking stage: the Tracker interface and the Track it keeps for each object."""

from __future__ import annotations

import abc
from collections import deque
from dataclasses import dataclass, field

from broker.payloads import Category
from edge.detect import Detection

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
# A minute of history at 5 frames per second: enough for a heading, bounded for weeks of uptime.
DEFAULT_HISTORY = 300


def centre(box: Box) -> tuple[float, float]:
    """Centre point of a box."""
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_of(detection: Detection) -> Box:
    """A detection's box as a tuple."""
    return detection.x1, detection.y1, detection.x2, detection.y2


@dataclass
class Track:
    """One object followed over frames; `id` stays the same while it is tracked."""

    id: int
    category: Category
    label: str
    box: Box
    score: float
    first_seen: float
    last_seen: float
    hits: int = 1
    missed: int = 0  # consecutive updates without a matching detection
    stationary_since: float | None = None
    history: deque[tuple[float, tuple[float, float]]] = field(
        default_factory=lambda: deque(maxlen=DEFAULT_HISTORY)
    )

    def stationary_s(self, t: float) -> float:
        """Seconds the object has not moved at time `t` (0 while it moves)."""
        return 0.0 if self.stationary_since is None else max(t - self.stationary_since, 0.0)

    def age_s(self, t: float) -> float:
        """Seconds since the object was first seen."""
        return max(t - self.first_seen, 0.0)


class Tracker(abc.ABC):
    """Associates each frame's detections with the objects seen before."""

    @abc.abstractmethod
    def update(self, detections: list[Detection], t: float) -> list[Track]:
        """Feed one frame's detections at time `t` (seconds); the live tracks afterwards."""


__all__ = ["Box", "Track", "Tracker", "box_of", "centre", "iou"]
