"""The `ensemble` back-end: run several detectors (YOLOX and NanoDet) and fuse their boxes."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy.typing as npt

from edge.detect import (
    ENSEMBLE,
    DetectionResult,
    Detector,
    DetectorSettings,
    create,
    register,
)
from edge.detect.fusion import fuse
from edge.detect.postprocess import apply_thresholds, check_image
from models.registry import load_manifest

logger = logging.getLogger(__name__)

# Members keep every box down to this score; the ensemble's own (per-category) thresholds
# apply after fusion. Fixed so that the fused scores do not depend on the final thresholds.
MEMBER_SCORE = 0.05


def member_settings(settings: DetectorSettings, model: str) -> DetectorSettings:
    """Settings of one member: its own decoder and model, the ensemble's other options."""
    data = settings.model_dump()
    data.update(
        backend=load_manifest().get(model).decoder,
        model=model,
        score_threshold=MEMBER_SCORE,
        category_thresholds={},
    )
    return DetectorSettings.model_validate(data)


@register(ENSEMBLE)
class EnsembleDetector(Detector):
    """Runs each member detector on the image and fuses their boxes (weighted boxes fusion)."""

    def __init__(self, members: list[Detector], settings: DetectorSettings) -> None:
        super().__init__(Path(), [], settings)
        self.members = members
        self.name = "+".join(m.settings.model for m in members)

    @classmethod
    def build(cls, settings: DetectorSettings, store: Path | None = None) -> Detector:
        """Build every member from `store`."""
        members = [create(member_settings(settings, m), store) for m in settings.ensemble_members]
        return cls(members, settings)

    def detect(self, image_bgr: npt.NDArray[Any]) -> DetectionResult:
        """Detect with every member, fuse, then apply the per-category thresholds."""
        height, width = check_image(image_bgr)
        start = time.perf_counter()
        results = [m.detect(image_bgr) for m in self.members]
        fused = fuse(
            [r.detections for r in results],
            self.settings.fusion_iou,
            self.settings.ensemble_fusion,
        )
        kept = apply_thresholds(fused, self.settings.threshold_for)
        return DetectionResult(
            detections=kept,
            width=width,
            height=height,
            model=self.name,
            inference_ms=sum(r.inference_ms for r in results),
            total_ms=(time.perf_counter() - start) * 1000.0,
        )
