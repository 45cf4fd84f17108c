"""YOLOX-Nano back-end: top-left letterbox, raw BGR 0-255 input, grid decoding (MODELS.md)."""

from __future__ import annotations

import logging

import numpy as np

from edge.detect import register
from edge.detect.postprocess import FloatArray, ImageArray, Letterbox, letterbox
from edge.detect.runtime import OnnxDetector

logger = logging.getLogger(__name__)

STRIDES = (8, 16, 32)
PAD_VALUE = 114
BOX_FIELDS = 5  # x, y, w, h, objectness before the class scores


def grid_and_strides(
    input_hw: tuple[int, int], strides: tuple[int, ...] = STRIDES
) -> tuple[FloatArray, FloatArray]:
    """Cell (x, y) grid offsets (N, 2) and per-cell strides (N, 1), in YOLOX's output order."""
    grids: list[FloatArray] = []
    cell_strides: list[FloatArray] = []
    for stride in strides:
        h, w = input_hw[0] // stride, input_hw[1] // stride
        xv, yv = np.meshgrid(np.arange(w), np.arange(h))
        grids.append(np.stack((xv, yv), axis=2).reshape(-1, 2).astype(np.float32))
        cell_strides.append(np.full((h * w, 1), stride, dtype=np.float32))
    return np.concatenate(grids), np.concatenate(cell_strides)


def decode_yolox(
    raw: FloatArray, input_hw: tuple[int, int], strides: tuple[int, ...] = STRIDES
) -> tuple[FloatArray, FloatArray]:
    """Decode a [1, N, 5 + C] YOLOX output into xyxy input-pixel boxes and obj x class scores."""
    pred = raw.reshape(-1, raw.shape[-1])
    grid, cell_stride = grid_and_strides(input_hw, strides)
    if len(grid) != len(pred):
        raise ValueError(f"YOLOX output has {len(pred)} rows, grid for {input_hw} has {len(grid)}")
    centre = (pred[:, 0:2] + grid) * cell_stride
    # Clamp before exp: an untrained or corrupt head must not overflow to inf.
    size = np.exp(np.clip(pred[:, 2:4], -10.0, 10.0)) * cell_stride
    boxes = np.concatenate((centre - size / 2.0, centre + size / 2.0), axis=1).astype(np.float32)
    scores = (pred[:, 4:5] * pred[:, BOX_FIELDS:]).astype(np.float32)
    return boxes, scores


def preprocess_yolox(
    image_bgr: ImageArray, input_hw: tuple[int, int]
) -> tuple[FloatArray, Letterbox]:
    """Letterbox at the top-left with padding 114; NCHW float32 BGR 0-255."""
    canvas, placement = letterbox(image_bgr, input_hw, PAD_VALUE, centred=False)
    tensor = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
    return tensor, placement


@register("yolox")
class YoloxDetector(OnnxDetector):
    """YOLOX (Nano) COCO detector on onnxruntime."""

    def preprocess(self, image_bgr: ImageArray) -> tuple[FloatArray, Letterbox]:
        """Top-left letterbox into the session's input size."""
        return preprocess_yolox(image_bgr, self.input_hw)

    def decode(self, outputs: dict[str, FloatArray]) -> tuple[FloatArray, FloatArray]:
        """Grid decoding of the single output tensor."""
        return decode_yolox(outputs[self.output_names[0]], self.input_hw)
