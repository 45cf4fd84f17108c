"""Export of detection results to formats other tools read (MegaDetector JSON, CSV)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from edge.detect import DetectionResult

logger = logging.getLogger(__name__)

# (species name, classifier probability) pairs for one detection, best first, e.g.
# [("Corvus corax", 0.81)]; the MegaDetector export writes those at its SPECIES_FLOOR or above.
Classification = list[tuple[str, float]]


@dataclass(frozen=True)
class ImageResult:
    """What happened to one image: its detections, or why it could not be analysed.

    `file` is the path relative to the scanned folder (MegaDetector's convention);
    `result` holds only the detections the detector kept (its thresholds already applied);
    `classifications`, when given, has one entry per detection of `result`, in order.
    """

    file: str
    result: DetectionResult | None
    failure: str | None = None
    classifications: list[Classification] = field(default_factory=list)

    def __post_init__(self) -> None:
        if (self.result is None) == (self.failure is None):
            raise ValueError(f"{self.file}: exactly one of result and failure must be given")
        if self.classifications and (
            self.result is None or len(self.classifications) != len(self.result.detections)
        ):
            raise ValueError(f"{self.file}: one classification list per detection expected")


__all__ = ["Classification", "ImageResult"]
