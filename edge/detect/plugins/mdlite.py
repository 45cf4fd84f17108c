"""zamba's MegadetectorLite back-end: YOLOX-tiny with one class, `animal` (MODELS.md).

Trained by the zamba project on MegaDetector's predictions over camera-trap video, it fires on
animals (birds included) and on nothing else: no person or vehicle class. Its output is already
decoded to (cx, cy, w, h) in network-input pixels with sigmoided objectness and class score.
"""

from __future__ import annotations

import logging

import numpy as np

from broker.payloads import Category
from edge.detect import register
from edge.detect.postprocess import FloatArray, ImageArray, Letterbox, letterbox
from edge.detect.runtime import OnnxDetector

logger = logging.getLogger(__name__)

# zamba pads the bottom/right with 0 and feeds RGB 0-255 (MODELS.md).
PAD_VALUE = 0
FIELDS = 6  # cx, cy, w, h, objectness, class score


def mdlite_category(class_id: int) -> Category | None:
    """The model's only class (0) is an animal of any kind."""
    return Category.ANIMAL if class_id == 0 else None


def decode_mdlite(raw: FloatArray) -> tuple[FloatArray, FloatArray]:
    """A [1, N, 6] output into xyxy input-pixel boxes (N, 4) and scores (N, 1)."""
    if raw.ndim != 3 or raw.shape[-1] != FIELDS:
        raise ValueError(f"MegadetectorLite output must be [1, N, {FIELDS}], got {raw.shape}")
    pred = raw.reshape(-1, FIELDS)
    centre, size = pred[:, 0:2], np.clip(pred[:, 2:4], 0.0, None)
    boxes = np.concatenate((centre - size / 2.0, centre + size / 2.0), axis=1).astype(np.float32)
    scores = (pred[:, 4:5] * pred[:, 5:6]).astype(np.float32)
    return boxes, scores


@register("mdlite")
class MegadetectorLiteDetector(OnnxDetector):
    """zamba MegadetectorLite (YOLOX-tiny, camera-trap animals) on onnxruntime."""

    def category_of(self, class_id: int) -> Category | None:
        """Every box is an animal (the model's one class)."""
        return mdlite_category(class_id)

    def preprocess(self, image_bgr: ImageArray) -> tuple[FloatArray, Letterbox]:
        """Top-left letterbox padded with 0, RGB, NCHW float32 0-255."""
        canvas, placement = letterbox(image_bgr, self.input_hw, PAD_VALUE, centred=False)
        rgb = canvas[..., ::-1].transpose(2, 0, 1)[None]
        return np.ascontiguousarray(rgb, dtype=np.float32), placement

    def decode(self, outputs: dict[str, FloatArray]) -> tuple[FloatArray, FloatArray]:
        """The output is already decoded: corners from centre and size."""
        return decode_mdlite(outputs[self.output_names[0]])
