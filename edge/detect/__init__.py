"""Detection stage: the Detector interface, its settings and the back-end registry.

Back-ends live in `edge/detect/plugins/`, one module each, and register themselves under a key
with their own settings class (the `detector:` section of the node's YAML is validated by the
class its `backend` names). The result types are in `edge/detect/types.py`; importing them, or
this package, loads no model runtime: the plugins are imported when a back-end is first needed.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    field_validator,
    model_validator,
)

from broker.payloads import Category
from edge.detect.types import Detection, DetectionResult
from edge.registry import Registry
from models.registry import load_labels, load_manifest, model_path

if TYPE_CHECKING:
    import numpy.typing as npt

logger = logging.getLogger(__name__)

# Defaults chosen by `python -m benchmarks.detectors --quick` on the 38 shared labelled images
# (image-level; animal = camera-trap frames, 30 with an animal, 3 without) and, for the cost,
# `python -m benchmarks.scan_cost` (whole `edge scan` process, x the plain YOLOX-Nano pass):
#   config (2 cores)                          x plain  animal thr  P/R        bird thr  P/R
#   yolox plain                                 1.00     0.30      1.00/0.50    0.30    0.88/0.64
#   mdlite 416 (camera-trap detector)           1.39     0.10      0.96/0.90      -     no bird
#   yolox + nanodet on every frame, IR enh.     2.14     0.20      0.97/0.97    0.40    1.00/0.73
#   cascade yolox -> nanodet < 0.4 (default)   1.76     0.20      0.97/0.97    0.40    1.00/0.73
# The cascade (edge/detect/plugins/ensemble.py) makes the same decisions as both models on
# every frame. Leave-one-out choice gives animal P 0.94 R 1.00: the one false animal is the
# empty night IR frame, whose score sits among those of real night animals. MegadetectorLite
# misses the three hard birds only NanoDet finds (README "Detection").
# Bird: no threshold reaches R >= 0.85 at P >= 0.90 with these models (0.40-0.47: P 1.00
# R 0.73). The misses are hidden/dull birds (chicken, sage grouse, a bird in a greyscale frame)
# scoring 0.19-0.22, below a squirrel at 0.39; `python -m benchmarks.bird_strategies` shows that
# flip TTA, tiling, slicing (SAHI), a zoomed second look and an iNat classifier gate do not
# separate them either.
DEFAULT_BACKEND = "ensemble"
DEFAULT_MODEL = "yolox_nano_416_coco"
# Two threads leave a Raspberry Pi 4/5 core for ingest and publishing.
DEFAULT_THREADS = 2
MAX_THREADS = 8
# 0.3 keeps most true birds (image-level recall) at a precision near 0.9 on the shared images.
DEFAULT_SCORE_THRESHOLD = 0.3
DEFAULT_NMS_IOU = 0.45
DEFAULT_ANIMAL_THRESHOLD = 0.2
DEFAULT_BIRD_THRESHOLD = 0.4
DEFAULT_TILING = False
# Night infra-red frames: "off" = as captured, "enhanced" = CLAHE luminance instead of the
# frame, "both" = run on the frame and its enhanced copy and fuse the boxes.
IrMode = Literal["off", "enhanced", "both"]
DEFAULT_IR_ENHANCE: IrMode = "enhanced"
# Score multiplier for a tile box that no full-frame box of the same kind confirms (1 = off).
DEFAULT_TILE_ONLY_FACTOR = 1.0

Score = Annotated[float, Field(ge=0.0, le=1.0)]


def available() -> list[str]:
    """Keys of the registered detector back-ends, sorted."""
    return _BACKENDS.keys()


class DetectorSettings(BaseModel):
    """Detector configuration (the `detector:` section of the node's YAML): what every back-end
    understands. A back-end with options of its own extends this class (its `settings_type`)."""

    model_config = ConfigDict(extra="forbid")
    # False for back-ends that run models named elsewhere (the ensemble's members).
    uses_model: ClassVar[bool] = True

    backend: str = Field(
        default=DEFAULT_BACKEND, description="registered back-end key, e.g. 'yolox' or 'nanodet'"
    )
    model: str = Field(
        default=DEFAULT_MODEL,
        description="model id from models/manifest.yaml for that back-end (unused by 'ensemble')",
    )
    threads: int = Field(
        default=DEFAULT_THREADS, ge=1, le=MAX_THREADS, description="onnxruntime intra-op threads"
    )
    score_threshold: float = Field(
        default=DEFAULT_SCORE_THRESHOLD,
        ge=0.01,
        le=1.0,
        description="minimum score (objectness x class) for a detection to be kept",
    )
    category_thresholds: dict[Category, Score] = Field(
        default_factory=lambda: {
            Category.ANIMAL: DEFAULT_ANIMAL_THRESHOLD,
            Category.DOG: DEFAULT_ANIMAL_THRESHOLD,
            Category.BIRD: DEFAULT_BIRD_THRESHOLD,
        },
        description="per-category score threshold overriding score_threshold, e.g. {person: 0.5}",
    )
    nms_iou: float = Field(
        default=DEFAULT_NMS_IOU,
        ge=0.05,
        le=0.95,
        description="IoU above which a lower-scoring box of the same class is suppressed",
    )

    tiling: bool = Field(
        default=DEFAULT_TILING,
        description=(
            "also run on overlapping square tiles of wide frames (2-3x the inference time, "
            "finds small and distant animals and people the full frame misses)"
        ),
    )

    ir_enhance: IrMode = Field(
        default=DEFAULT_IR_ENHANCE,
        description=(
            "night infra-red (greyscale) frames: 'off', 'enhanced' (CLAHE on luminance instead) "
            "or 'both' (frame and enhanced copy, boxes fused; 2x the inference on IR frames)"
        ),
    )
    tile_only_factor: float = Field(
        default=DEFAULT_TILE_ONLY_FACTOR,
        ge=0.1,
        le=1.0,
        description=(
            "with tiling: multiply the score of a box found only in a tile (no full-frame box of "
            "the same kind over it) by this; < 1 asks more of unconfirmed, small detections"
        ),
    )

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in _BACKENDS:
            raise ValueError(f"unknown detector backend {value!r}; available: {available()}")
        return value

    @field_validator("category_thresholds")
    @classmethod
    def _no_camera(cls, value: dict[Category, float]) -> dict[Category, float]:
        if Category.CAMERA in value:
            raise ValueError("'camera' is not a detection category")
        return value

    @model_validator(mode="after")
    def _model_matches_backend(self) -> DetectorSettings:
        # A bare DetectorSettings naming a back-end with its own class (create() converts it)
        # is checked by what that class runs.
        if not self.uses_model or not _BACKENDS[self.backend].settings_type.uses_model:
            return self
        spec = load_manifest().get(self.model)
        if spec.decoder != self.backend:
            raise ValueError(
                f"model {self.model} needs the {spec.decoder!r} decoder, not {self.backend!r}"
            )
        return self

    def threshold_for(self, category: Category) -> float:
        """Score threshold that applies to `category`."""
        return self.category_thresholds.get(category, self.score_threshold)

    def model_ids(self) -> list[str]:
        """The manifest models this detector runs."""
        return [self.model]


class Detector(abc.ABC):
    """A detection back-end: BGR image in, boxes with categories out."""

    key: ClassVar[str]
    settings_type: ClassVar[type[DetectorSettings]] = DetectorSettings

    def __init__(self, weights: Path, labels: Sequence[str], settings: DetectorSettings) -> None:
        self.weights = weights
        self.labels = list(labels)
        self.settings = settings

    @classmethod
    def build(cls, settings: DetectorSettings, store: Path | None = None) -> Detector:
        """This back-end with its installed, verified model from `store`."""
        weights = model_path(settings.model, store)
        labels = load_labels(settings.model, store)
        logger.info("loading %s detector with %s (%d threads)", cls.key, weights, settings.threads)
        return cls(weights, labels, settings)

    @abc.abstractmethod
    def detect(self, image_bgr: npt.NDArray[Any]) -> DetectionResult:
        """Detect objects in one HxWx3 uint8 BGR image; ValueError for an unusable array."""


_BACKENDS: Registry[Detector] = Registry("detector", "edge.detect.plugins")
register = _BACKENDS.register


def detector_settings(
    data: Mapping[str, Any] | DetectorSettings | None = None, /, **fields: Any
) -> DetectorSettings:
    """Settings validated by the settings class of the back-end that `backend` names."""
    settings: DetectorSettings = _BACKENDS.settings(data, DEFAULT_BACKEND, fields)
    return settings


# The `detector:` field of a configuration: parsed by the named back-end's own settings class.
DetectorConfig = Annotated[SerializeAsAny[DetectorSettings], _BACKENDS.validator(DEFAULT_BACKEND)]


def create(settings: DetectorSettings, store: Path | None = None) -> Detector:
    """Build the configured back-end with its installed, verified model from `store`."""
    settings = detector_settings(settings)
    return _BACKENDS[settings.backend].build(settings, store)


__all__ = [
    "Category",
    "Detection",
    "DetectionResult",
    "Detector",
    "DetectorConfig",
    "DetectorSettings",
    "available",
    "create",
    "detector_settings",
    "register",
]
