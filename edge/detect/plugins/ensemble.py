"""The `ensemble` back-end: run several detectors (YOLOX and NanoDet) and fuse their boxes.

By default it is a cascade: the first member looks at every frame, and the others only where
it is unsure of an animal or sees none (its best animal score below `second_look_below`). Their
boxes are fused with the first member's. On night infra-red frames a bird must be called a
bird by every member; a greyscale silhouette one model calls "bird" stays an animal.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from broker.payloads import Category
from edge.detect import (
    DetectionResult,
    Detector,
    DetectorSettings,
    available,
    create,
    detector_settings,
    register,
)
from edge.detect.categories import ANIMAL_CATEGORIES
from edge.detect.enhance import is_infrared
from edge.detect.fusion import fuse
from edge.detect.nms import iou_one_to_many
from edge.detect.postprocess import apply_thresholds, check_image
from edge.detect.types import Detection
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
# Cascade: the other members look again where the first member's best animal score is below
# this. Every camera-trap animal the first member (YOLOX-Nano) scores 0.40 or more is already
# found at the animal threshold, so the second look could only add boxes it has; at 0.4 NanoDet
# ran on 24 of the 38 shared images and the image-level decisions equal the full ensemble's
# (python -m benchmarks.detectors, README "Detection").
DEFAULT_SECOND_LOOK_BELOW = 0.4
# Night infra-red: a member "agrees" that a box is a bird when it has a bird box over it
# (IoU >= the fusion IoU) scoring at least this. The IR crow on the shared set gets 0.34 from
# the second member; night mammals get their "bird" calls from one model only.
NIGHT_BIRD_AGREEMENT = 0.3


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

    second_look_below: float | None = Field(
        default=DEFAULT_SECOND_LOOK_BELOW,
        ge=0.05,
        le=1.0,
        description=(
            "cascade: run the members after the first only where the first's best animal score "
            "is below this (unsure or nothing seen); null runs every member on every frame"
        ),
    )
    night_bird_agreement: bool = Field(
        default=True,
        description=(
            "night infra-red frames: a bird stays a bird only when every member calls it one; "
            "otherwise it is reported as an animal"
        ),
    )

    @model_validator(mode="after")
    def _members_have_backends(self) -> EnsembleSettings:
        manifest = load_manifest()
        for member in self.members:
            decoder = manifest.get(member).decoder
            if decoder == ENSEMBLE or decoder not in available():
                raise ValueError(f"ensemble member {member} has no detector back-end")
        if self.fusion == "avg" and self.second_look_below is not None:
            # "avg" halves a box one member does not see; in a cascade a member that did not
            # run would halve every confident box, and the thresholds would mean other things.
            raise ValueError(
                "fusion 'avg' needs every member on every frame: second_look_below null"
            )
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

    @classmethod
    def build(cls, settings: DetectorSettings, store: Path | None = None) -> Detector:
        """Build every member from `store`."""
        if not isinstance(settings, EnsembleSettings):
            raise TypeError("the ensemble back-end needs EnsembleSettings")
        members = [create(member_settings(settings, m), store) for m in settings.members]
        return cls(members, settings)

    def detect(self, image_bgr: npt.NDArray[Any]) -> DetectionResult:
        """Detect with the first member, with the others where needed, fuse, then apply the
        per-category thresholds."""
        height, width = check_image(image_bgr)
        start = time.perf_counter()
        first = self.members[0].detect(image_bgr)
        results = [first]
        night = self.fusion.night_bird_agreement and is_infrared(image_bgr)
        if self._second_look(first.detections, night):
            results += [m.detect(image_bgr) for m in self.members[1:]]
        fused = fuse(
            [r.detections for r in results],
            self.fusion.fusion_iou,
            self.fusion.fusion,
        )
        if night:
            fused = [self._night_bird(d, [r.detections for r in results]) for d in fused]
        kept = apply_thresholds(fused, self.settings.threshold_for)
        return DetectionResult(
            detections=kept,
            width=width,
            height=height,
            model="+".join(r.model for r in results),
            inference_ms=sum(r.inference_ms for r in results),
            total_ms=(time.perf_counter() - start) * 1000.0,
        )

    def _second_look(self, first: list[Detection], night: bool) -> bool:
        """Whether the other members must look too: no cascade, the first member unsure of an
        animal, or a bird claimed on a night frame (which needs every member's agreement)."""
        below = self.fusion.second_look_below
        if below is None:
            return True
        best = max((d.score for d in first if d.category in ANIMAL_CATEGORIES), default=0.0)
        if best < below:
            return True
        bird = self.settings.threshold_for(Category.BIRD)
        return night and any(d.category is Category.BIRD and d.score >= bird for d in first)

    def _night_bird(self, det: Detection, per_member: list[list[Detection]]) -> Detection:
        """`det` itself, or as an animal when a member does not call it a bird too."""
        if det.category is not Category.BIRD:
            return det
        if len(per_member) < len(self.members):
            return replace(det, category=Category.ANIMAL)
        box = np.asarray([det.x1, det.y1, det.x2, det.y2], dtype=np.float32)
        for dets in per_member:
            birds = [
                d for d in dets if d.category is Category.BIRD and d.score >= NIGHT_BIRD_AGREEMENT
            ]
            if not birds:
                return replace(det, category=Category.ANIMAL)
            boxes = np.asarray([[d.x1, d.y1, d.x2, d.y2] for d in birds], dtype=np.float32)
            if float(iou_one_to_many(box, boxes).max()) < self.fusion.fusion_iou:
                return replace(det, category=Category.ANIMAL)
        return det
