"""Generic Ultralytics-style back-end: YOLOv5 [1,N,5+C] or YOLOv8/v11 [1,4+C,N] ONNX outputs."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from edge.detect import DetectionResult, DetectorSettings, register
from edge.detect.postprocess import FloatArray, ImageArray, Letterbox, letterbox
from edge.detect.runtime import OnnxDetector
from models.registry import InputSpec, load_manifest

logger = logging.getLogger(__name__)

Layout = Literal["v5", "v8"]
Scale = Literal["0-255", "0-1"]
COCO_CLASSES = 80
V5_BOX_FIELDS = 5  # cx, cy, w, h, objectness before the class scores
V8_BOX_FIELDS = 4  # cx, cy, w, h before the class scores (no objectness)
# The category map (categories.py) indexes the COCO-80 label order exactly.
COCO_NAMES_RESOURCE = ("labels", "coco80.names")

_RANGE_0_255 = re.compile(r"\b0\s*-\s*255\b")
_RANGE_0_1 = re.compile(r"\b0\s*-\s*1\b(?!\d)|/\s*255\b")
_PADDING = re.compile(r"\b(?:padding|pad)(?:\s+value)?\s*[=:]?\s*(\d{1,3})\b")
_ZERO_PADDING = re.compile(r"\bzero\s+padding\b")
_CENTRED = re.compile(r"\bcent(?:red|ered|re|er)\b")
_KEEP_RATIO = re.compile(r"letterbox|keep(?:ing)?[- ]ratio|keep(?:ing)? (?:the )?aspect ratio")


@dataclass(frozen=True)
class YoloInput:
    """How an image becomes the network input: colour order, value range and letterbox."""

    colour: Literal["BGR", "RGB"]
    scale: Scale
    centred: bool
    pad_value: int

    def __post_init__(self) -> None:
        if not 0 <= self.pad_value <= 255:
            raise ValueError(f"padding value must be 0-255, got {self.pad_value}")

    @classmethod
    def from_spec(cls, spec: InputSpec) -> YoloInput:
        """Parse a manifest InputSpec; ValueError when it is not a plain letterboxed YOLO input."""
        if spec.dtype != "float32" or spec.layout != "NCHW" or len(spec.shape) != 4:
            raise ValueError(
                f"input {spec.name}: the yolo decoder needs float32 NCHW [1,3,H,W], got "
                f"{spec.dtype} {spec.layout} {spec.shape}"
            )
        norm = spec.normalisation.lower()
        if "mean" in norm or "std" in norm:
            raise ValueError(f"input {spec.name}: mean/std normalisation is not supported: {norm}")
        wide, unit = bool(_RANGE_0_255.search(norm)), bool(_RANGE_0_1.search(norm))
        if wide == unit:
            raise ValueError(
                f"input {spec.name}: normalisation must say '0-255' or '0-1' (once), got {norm!r}"
            )
        resize = spec.resize.lower()
        if not _KEEP_RATIO.search(resize):
            raise ValueError(f"input {spec.name}: resize must be a letterbox, got {resize!r}")
        centred = bool(_CENTRED.search(resize))
        if centred == ("top-left" in resize):
            raise ValueError(
                f"input {spec.name}: resize must say 'top-left' or 'centred', got {resize!r}"
            )
        match = _PADDING.search(resize)
        if match:
            pad = int(match.group(1))
        elif _ZERO_PADDING.search(resize):
            pad = 0
        else:
            raise ValueError(f"input {spec.name}: resize must give 'padding N', got {resize!r}")
        return cls(spec.colour, "0-255" if wide else "0-1", centred, pad)


# What Ultralytics YOLOv5/v8/v11 exports expect (LetterBox(auto=False), x / 255).
ULTRALYTICS_INPUT = YoloInput(colour="RGB", scale="0-1", centred=True, pad_value=114)


def detect_layout(shape: Sequence[int], num_classes: int) -> Layout:
    """'v5' for [1, N, 5+C], 'v8' for [1, 4+C, N]; ValueError for anything else."""
    if len(shape) != 3 or shape[0] != 1:
        raise ValueError(f"expected a [1, N, 5+C] or [1, 4+C, N] output, got shape {list(shape)}")
    v5 = shape[2] == V5_BOX_FIELDS + num_classes
    v8 = shape[1] == V8_BOX_FIELDS + num_classes
    if v5 == v8:
        problem = "ambiguous" if v5 else "matches neither layout"
        raise ValueError(
            f"output shape {list(shape)} with {num_classes} classes is {problem}: expected "
            f"[1, N, {V5_BOX_FIELDS + num_classes}] (YOLOv5) or "
            f"[1, {V8_BOX_FIELDS + num_classes}, N] (YOLOv8/v11)"
        )
    return "v5" if v5 else "v8"


def decode_yolo(raw: FloatArray, num_classes: int) -> tuple[FloatArray, FloatArray]:
    """xyxy input-pixel boxes (N, 4) and class scores (N, C) from either Ultralytics layout."""
    layout = detect_layout(raw.shape, num_classes)
    pred = raw[0] if layout == "v5" else raw[0].T
    centre, size = pred[:, 0:2], pred[:, 2:4]
    boxes = np.concatenate((centre - size / 2.0, centre + size / 2.0), axis=1).astype(np.float32)
    # YOLOv5: objectness x class score; YOLOv8/v11: class scores as they are.
    scores = pred[:, 4:5] * pred[:, V5_BOX_FIELDS:] if layout == "v5" else pred[:, V8_BOX_FIELDS:]
    return boxes, np.ascontiguousarray(scores, dtype=np.float32)


def preprocess_yolo(
    image_bgr: ImageArray, input_hw: tuple[int, int], spec: YoloInput
) -> tuple[FloatArray, Letterbox]:
    """Letterbox as `spec` says, reorder colours, scale; NCHW float32 tensor and placement."""
    canvas, placement = letterbox(image_bgr, input_hw, spec.pad_value, centred=spec.centred)
    if spec.colour == "RGB":
        canvas = canvas[:, :, ::-1]
    tensor = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
    if spec.scale == "0-1":
        tensor /= np.float32(255.0)
    return tensor, placement


def coco80_names() -> list[str]:
    """The COCO-80 class names shipped in the package, in model order."""
    text = resources.files("models").joinpath(*COCO_NAMES_RESOURCE).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


@register("yolo")
class YoloGenericDetector(OnnxDetector):
    """Any Ultralytics-layout (YOLOv5 or YOLOv8/v11) COCO-80 ONNX detector on onnxruntime."""

    def __init__(
        self,
        weights: Path,
        labels: Sequence[str],
        settings: DetectorSettings,
        *,
        input_format: YoloInput | InputSpec | None = None,
        name: str | None = None,
    ) -> None:
        labels = list(labels)
        if labels != coco80_names():
            # runtime.OnnxDetector maps classes with categories.coco_category (COCO-80 order).
            raise ValueError(
                f"{weights.name}: the yolo back-end needs the COCO-80 label map in model order "
                f"(got {len(labels)} labels starting {labels[:3]})"
            )
        super().__init__(weights, labels, settings)
        if input_format is None:
            input_format = load_manifest().get(settings.model).input
        if isinstance(input_format, InputSpec):
            self._check_shape(input_format)
            input_format = YoloInput.from_spec(input_format)
        self.input_format: YoloInput = input_format
        self.name = name if name is not None else settings.model
        self.layout: Layout | None = None
        out_shape = self.session.get_outputs()[0].shape
        if all(isinstance(d, int) for d in out_shape):
            self.layout = detect_layout([int(d) for d in out_shape], len(self.labels))
        logger.info("%s: %s layout, input %s", weights.name, self.layout, self.input_format)

    @classmethod
    def from_file(
        cls,
        weights: Path,
        input_spec: YoloInput | InputSpec,
        labels: Sequence[str],
        settings: DetectorSettings | None = None,
        *,
        name: str | None = None,
    ) -> YoloGenericDetector:
        """A detector for a model outside the manifest (no sha256 check); settings.model unused."""
        return cls(
            weights,
            labels,
            settings if settings is not None else DetectorSettings(),
            input_format=input_spec,
            name=name if name is not None else weights.stem,
        )

    def _check_shape(self, spec: InputSpec) -> None:
        if tuple(spec.shape[2:]) != self.input_hw:
            raise ValueError(
                f"{self.weights.name}: input spec says {spec.shape}, the model takes "
                f"{list(self.input_hw)}"
            )

    def preprocess(self, image_bgr: ImageArray) -> tuple[FloatArray, Letterbox]:
        """Letterbox, colour order and value range from the model's input spec."""
        return preprocess_yolo(image_bgr, self.input_hw, self.input_format)

    def decode(self, outputs: dict[str, FloatArray]) -> tuple[FloatArray, FloatArray]:
        """Decode the first output in whichever Ultralytics layout it has."""
        return decode_yolo(outputs[self.output_names[0]], len(self.labels))

    def detect(self, image_bgr: npt.NDArray[Any]) -> DetectionResult:
        """Detect objects in one HxWx3 uint8 BGR image; the result names this model."""
        result = super().detect(image_bgr)
        return result if result.model == self.name else replace(result, model=self.name)
