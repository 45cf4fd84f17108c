"""Motion stage: the MotionDetector interface, motion regions and motion settings."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator

# Frigate's defaults, measured there on many cameras: 180 rows keep a fox-sized object a few
# hundred pixels of a 1080p frame while the work per frame stays small on a Raspberry Pi.
DEFAULT_FRAME_HEIGHT = 180
# Grey-level difference that counts as change; lower finds faint animals at night but lets
# compression noise and swaying grass through.
DEFAULT_THRESHOLD = 30
# Smallest contour (pixels of the downscaled frame) reported as motion; larger ignores rain and
# insects but misses small birds far from the camera.
DEFAULT_CONTOUR_AREA = 10
# Weight of the new frame in the running-average background: higher forgets a stopped animal
# sooner (it becomes background), lower is slower to absorb changing light.
DEFAULT_LEARNING_RATE = 0.02
# A change over more than this fraction of the frame at once is the IR cut filter switching,
# lightning or the exposure jumping, never an animal: the background is reset instead.
DEFAULT_RECALIBRATE_FRACTION = 0.8
DEFAULT_BLUR_SIZE = 3
DEFAULT_DILATE_ITERATIONS = 2

Point = Annotated[list[Annotated[float, Field(ge=0.0, le=1.0)]], Field(min_length=2, max_length=2)]
Polygon = Annotated[list[Point], Field(min_length=3, max_length=64)]


@dataclass(frozen=True, slots=True)
class Region:
    """A pixel box (x2, y2 exclusive) in the full frame."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self.y2 - self.y1

    @property
    def area(self) -> int:
        """Area in pixels (0 for an empty box)."""
        return max(self.width, 0) * max(self.height, 0)


class MotionSettings(BaseModel):
    """Motion detection configuration (the `motion:` section of a camera)."""

    model_config = ConfigDict(extra="forbid")

    frame_height: int = Field(
        default=DEFAULT_FRAME_HEIGHT, ge=36, le=1080, description="rows of the downscaled frame"
    )
    threshold: int = Field(
        default=DEFAULT_THRESHOLD, ge=1, le=255, description="grey-level change counted as motion"
    )
    contour_area: int = Field(
        default=DEFAULT_CONTOUR_AREA,
        ge=1,
        le=100_000,
        description="smallest motion area in pixels of the downscaled frame",
    )
    learning_rate: float = Field(
        default=DEFAULT_LEARNING_RATE,
        gt=0.0,
        le=1.0,
        description="weight of each new frame in the running-average background",
    )
    recalibrate_fraction: float = Field(
        default=DEFAULT_RECALIBRATE_FRACTION,
        gt=0.0,
        le=1.0,
        description="changed fraction of the frame above which the background is reset",
    )
    blur_size: int = Field(
        default=DEFAULT_BLUR_SIZE, ge=1, le=31, description="odd Gaussian kernel size (1 = none)"
    )
    dilate_iterations: int = Field(
        default=DEFAULT_DILATE_ITERATIONS, ge=0, le=10, description="dilations joining blobs"
    )
    interpolation: Literal["nearest", "area"] = Field(
        default="nearest",
        description=(
            "downscaling: 'nearest' is several times cheaper on 1080p (benchmarks/motion.py), "
            "'area' averages away more sensor noise"
        ),
    )
    mask: list[Polygon] = Field(
        default_factory=list,
        max_length=32,
        description="polygons in normalised [x, y] image coordinates excluded from motion",
    )

    @field_validator("blur_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError("blur_size must be odd")
        return value


class MotionDetector(abc.ABC):
    """Finds the parts of a frame that changed; cheap enough to run on every frame."""

    @abc.abstractmethod
    def detect(self, frame_bgr: npt.NDArray[Any]) -> list[Region]:
        """Motion boxes in full-frame pixels for one HxWx3 BGR (or HxW grey) frame."""


__all__ = ["MotionDetector", "MotionSettings", "Polygon", "Region"]
