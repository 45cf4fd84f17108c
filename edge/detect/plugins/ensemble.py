"""The `ensemble` back-end: run several detectors (YOLOX and NanoDet) and fuse their boxes."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy.typing as npt
from pydantic import Field, model_validator

from edge.detect import (
    DetectionResult,
    Detector,
    DetectorSettings,
    available,
    create,
    detector_settings,
    register,
)
from edge.detect.fusion import fuse
from edge.detect.postprocess import apply_thresholds, check_image
from models.registry import load_manifest

logger = logging.getLogger(__name__)

ENSEMBLE = "ensemble"
DEFAULT_MEMBERS = ("yolox_nano_416_coco", "nanodet_m_416_coco")
# "avg": fused score = sum of the members' scores / number of members (weighted boxes fusion:
# a box only one model sees loses half its score); "max": the best member score (union).
FusionMode = Literal["avg", "max"]
DEFAULT_FUSION: FusionMode = "max"
DEFAULT_FUSION_IOU = 0.5
# Members keep every box down to this score; the ensemble's own (per-category) thresholds
# apply after fusion. Fixed so that the fused scores do not depend on the final thresholds.
MEMBER_SCORE = 0.05


class EnsembleSettings(DetectorSettings):
    """`backend: ensemble`: the common detector options plus the members and their fusion."""

    uses_model: ClassVar[bool] = False

    members: list[str] = Field(
        default_factory=lambda: list(DEFAULT_MEMBERS),
        min_length=2,
        description="model ids run and fused (each with its own decoder); `model` is unused",
    )
    fusion: FusionMode = Field(
        default=DEFAULT_FUSION,
        description="'avg' (agreement, weighted boxes fusion) or 'max' (the best member score)",
    )
    fusion_iou: float = Field(
        default=DEFAULT_FUSION_IOU,
        ge=0.05,
        le=0.95,
        description="IoU above which boxes of two models are one object",
    )

    @model_validator(mode="after")
    def _members_have_backends(self) -> EnsembleSettings:
        manifest = load_manifest()
        for member in self.members:
            decoder = manifest.get(member).decoder
            if decoder == ENSEMBLE or decoder not in available():
                raise ValueError(f"ensemble member {member} has no detector back-end")
        return self

    def model_ids(self) -> list[str]:
        """The member models."""
        return list(self.members)


def member_settings(settings: DetectorSettings, model: str) -> DetectorSettings:
    """Settings of one member: its own decoder and model, the ensemble's other options."""
    data = settings.model_dump(include=set(DetectorSettings.model_fields))
    data.update(
        backend=load_manifest().get(model).decoder,
        model=model,
        score_threshold=MEMBER_SCORE,
        category_thresholds={},
    )
    return detector_settings(data)


@register(ENSEMBLE)
class EnsembleDetector(Detector):
    """Runs each member detector on the image and fuses their boxes (weighted boxes fusion)."""

    settings_type = EnsembleSettings

    def __init__(self, members: list[Detector], settings: EnsembleSettings) -> None:
        super().__init__(Path(), [], settings)
        self.members = members
        self.fusion = settings
        self.name = "+".join(m.settings.model for m in members)

    @classmethod
    def build(cls, settings: DetectorSettings, store: Path | None = None) -> Detector:
        """Build every member from `store`."""
        if not isinstance(settings, EnsembleSettings):
            raise TypeError("the ensemble back-end needs EnsembleSettings")
        members = [create(member_settings(settings, m), store) for m in settings.members]
        return cls(members, settings)

    def detect(self, image_bgr: npt.NDArray[Any]) -> DetectionResult:
        """Detect with every member, fuse, then apply the per-category thresholds."""
        height, width = check_image(image_bgr)
        start = time.perf_counter()
        results = [m.detect(image_bgr) for m in self.members]
        fused = fuse(
            [r.detections for r in results],
            self.fusion.fusion_iou,
            self.fusion.fusion,
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
