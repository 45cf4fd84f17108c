"""Which part of a frame the detector sees: square crops around motion, or a periodic full frame."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.motion import Region

log = logging.getLogger(__name__)

# Frigate grows a motion box 1.5x into its crop so the whole animal, not only its moving
# part, reaches the model; more context costs detector resolution on small objects.
DEFAULT_CROP_MULTIPLIER = 1.5
# Motion boxes closer than this fraction of the larger one are one object (a deer's legs and
# head); a larger margin merges separate animals into a crop that shrinks them for the model.
DEFAULT_MERGE_MARGIN = 0.25
# Crops overlapping by more than this fraction of the smaller one are merged into one crop
# (one detector call instead of two nearly identical ones).
DEFAULT_CROP_OVERLAP = 0.5
# A full-frame check every 25 frames (a few seconds on an edge node) catches a resting
# animal that makes no motion; more often costs detector time, less often delays the sighting.
DEFAULT_FULL_FRAME_EVERY_FRAMES = 25
DEFAULT_FULL_FRAME_EVERY_S = 10.0
# When the crops together cover this much of the frame one full-frame call is cheaper.
DEFAULT_FULL_FRAME_COVERAGE = 0.6
DEFAULT_MODEL_SIZE = 416


def _expanded(r: Region, margin: float) -> Region:
    pad_x = round(max(r.width, r.height) * margin)
    return Region(r.x1 - pad_x, r.y1 - pad_x, r.x2 + pad_x, r.y2 + pad_x)


def _overlaps(a: Region, b: Region) -> bool:
    return a.x1 < b.x2 and b.x1 < a.x2 and a.y1 < b.y2 and b.y1 < a.y2


def union(a: Region, b: Region) -> Region:
    """Smallest box holding both."""
    return Region(min(a.x1, b.x1), min(a.y1, b.y1), max(a.x2, b.x2), max(a.y2, b.y2))


def intersection_area(a: Region, b: Region) -> int:
    """Area both boxes cover."""
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    return max(w, 0) * max(h, 0)


def square_crop(
    box: Region,
    frame_shape: tuple[int, ...],
    model_size: int,
    multiplier: float = DEFAULT_CROP_MULTIPLIER,
) -> Region:
    """A square around `box`, at least `model_size` wide, shifted (then clipped) into the frame."""
    frame_h, frame_w = frame_shape[0], frame_shape[1]
    side = max(round(max(box.width, box.height) * multiplier), model_size)
    cx = (box.x1 + box.x2) / 2
    cy = (box.y1 + box.y2) / 2

    def place(centre: float, limit: int) -> tuple[int, int]:
        if side >= limit:
            return 0, limit
        start = min(max(round(centre - side / 2), 0), limit - side)
        return start, start + side

    x1, x2 = place(cx, frame_w)
    y1, y2 = place(cy, frame_h)
    return Region(x1, y1, x2, y2)


def _merge_close(boxes: list[Region], margin: float) -> list[Region]:
    """Union boxes whose margin-expanded versions touch, until none do."""
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                if _overlaps(_expanded(merged[i], margin), _expanded(merged[j], margin)):
                    merged[i] = union(merged[i], merged.pop(j))
                    changed = True
                    break
            if changed:
                break
    return merged


def group_regions(
    regions: Sequence[Region],
    frame_shape: tuple[int, ...],
    model_size: int,
    *,
    multiplier: float = DEFAULT_CROP_MULTIPLIER,
    merge_margin: float = DEFAULT_MERGE_MARGIN,
    crop_overlap: float = DEFAULT_CROP_OVERLAP,
) -> list[Region]:
    """Detection crops for motion boxes: nearby boxes merged, each grown to a model-sized square."""
    groups = _merge_close([r for r in regions if r.area > 0], merge_margin)
    while True:
        crops = [square_crop(g, frame_shape, model_size, multiplier) for g in groups]
        pair = next(
            (
                (i, j)
                for i in range(len(crops))
                for j in range(i + 1, len(crops))
                if intersection_area(crops[i], crops[j])
                > crop_overlap * min(crops[i].area, crops[j].area)
            ),
            None,
        )
        if pair is None:
            return sorted(crops, key=lambda c: (c.y1, c.x1))
        i, j = pair
        groups[i] = union(groups[i], groups.pop(j))


class GateSettings(BaseModel):
    """When the detector runs (the `detect_gate:` section of a camera)."""

    model_config = ConfigDict(extra="forbid")

    model_size: int = Field(
        default=DEFAULT_MODEL_SIZE, ge=32, le=2048, description="detector input side in pixels"
    )
    full_frame_every_frames: int | None = Field(
        default=DEFAULT_FULL_FRAME_EVERY_FRAMES,
        ge=1,
        le=100_000,
        description="run on the full frame after this many frames without one (None = never)",
    )
    full_frame_every_s: float | None = Field(
        default=DEFAULT_FULL_FRAME_EVERY_S,
        gt=0.0,
        le=86_400.0,
        description="run on the full frame after this many seconds without one (None = never)",
    )
    full_frame_coverage: float = Field(
        default=DEFAULT_FULL_FRAME_COVERAGE,
        gt=0.0,
        le=1.0,
        description="crops covering this fraction of the frame are replaced by the full frame",
    )
    crop_multiplier: float = Field(
        default=DEFAULT_CROP_MULTIPLIER, ge=1.0, le=4.0, description="crop side / motion box side"
    )
    merge_margin: float = Field(
        default=DEFAULT_MERGE_MARGIN,
        ge=0.0,
        le=2.0,
        description="gap (fraction of box size) under which motion boxes are one object",
    )

    @model_validator(mode="after")
    def _some_full_frame(self) -> GateSettings:
        if self.full_frame_every_frames is None and self.full_frame_every_s is None:
            log.warning("no periodic full-frame check: a motionless animal is never detected")
        return self


@dataclass(frozen=True, slots=True)
class GateDecision:
    """What to run the detector on for one frame."""

    mode: Literal["skip", "crops", "full"]
    crops: list[Region] = field(default_factory=list)  # only for mode == "crops"


@dataclass
class GateStats:
    """Counts of gate decisions since start."""

    frames: int = 0
    skipped: int = 0
    crops: int = 0  # frames run on crops
    crop_calls: int = 0  # detector calls on crops
    full: int = 0

    @property
    def skipped_fraction(self) -> float:
        """Fraction of frames on which the detector did not run."""
        return self.skipped / self.frames if self.frames else 0.0


class DetectionGate:
    """Decides per frame whether the detector runs on motion crops, the full frame or nothing."""

    def __init__(self, settings: GateSettings | None = None) -> None:
        self.settings = settings or GateSettings()
        self.stats = GateStats()
        self._frames_since_full: int | None = None  # None: no full frame yet
        self._last_full_t: float | None = None

    def _full_due(self, t: float) -> bool:
        s = self.settings
        if self._frames_since_full is None or self._last_full_t is None:
            return True
        every_n, every_s = s.full_frame_every_frames, s.full_frame_every_s
        if every_n is not None and self._frames_since_full >= every_n:
            return True
        return every_s is not None and t - self._last_full_t >= every_s

    def decide(
        self, regions: Sequence[Region], frame_shape: tuple[int, ...], t: float
    ) -> GateDecision:
        """The decision for a frame at time `t` (seconds, monotonic) with these motion regions."""
        s = self.settings
        self.stats.frames += 1
        if self._frames_since_full is not None:
            self._frames_since_full += 1
        decision = GateDecision("skip")
        if self._full_due(t):
            decision = GateDecision("full")
        elif regions:
            crops = group_regions(
                regions,
                frame_shape,
                s.model_size,
                multiplier=s.crop_multiplier,
                merge_margin=s.merge_margin,
            )
            covered = sum(c.area for c in crops) / (frame_shape[0] * frame_shape[1])
            full = covered >= s.full_frame_coverage
            decision = GateDecision("full") if full else GateDecision("crops", crops)
        if decision.mode == "full":
            self.stats.full += 1
            self._frames_since_full = 0
            self._last_full_t = t
            return decision
        if decision.mode == "crops":
            self.stats.crops += 1
            self.stats.crop_calls += len(decision.crops)
        else:
            self.stats.skipped += 1
        return decision
