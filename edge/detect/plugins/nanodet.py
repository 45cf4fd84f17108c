"""NanoDet-m back-end: centred keep-ratio resize, mean/std input, distribution-focal decoding."""

from __future__ import annotations

import logging

import numpy as np

from edge.detect import register
from edge.detect.postprocess import FloatArray, ImageArray, Letterbox, letterbox
from edge.detect.runtime import OnnxDetector

logger = logging.getLogger(__name__)

STRIDES = (8, 16, 32)
MEAN_BGR = np.array([103.53, 116.28, 123.675], dtype=np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], dtype=np.float32)
PAD_VALUE = 0
REG_BINS = 8  # distances are distributions over 0..7 strides (reg_max = 7)
# Anchor point of a cell as a fraction of the stride; 0.5 = the cell centre (checked on the
# bird photos: with 0 the boxes sit half a cell up-left of the bird).
CELL_OFFSET = 0.5


def anchor_points(
    input_hw: tuple[int, int], stride: int, offset: float = CELL_OFFSET
) -> FloatArray:
    """(x, y) anchor points in input pixels for one level, row-major like the head's output."""
    h = -(-input_hw[0] // stride)
    w = -(-input_hw[1] // stride)
    xv, yv = np.meshgrid(np.arange(w), np.arange(h))
    points = np.stack((xv, yv), axis=2).reshape(-1, 2).astype(np.float32)
    return (points + offset) * stride


def distribution_to_distance(dis: FloatArray, bins: int = REG_BINS) -> FloatArray:
    """Expected distance in bins per box side from (N, 4 * bins) logits (softmax per side)."""
    logits = dis.reshape(-1, 4, bins)
    logits = logits - logits.max(axis=2, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=2, keepdims=True)
    out: FloatArray = (prob @ np.arange(bins, dtype=np.float32)).astype(np.float32)
    return out


def decode_nanodet(
    cls_preds: list[FloatArray],
    dis_preds: list[FloatArray],
    input_hw: tuple[int, int],
    strides: tuple[int, ...] = STRIDES,
    offset: float = CELL_OFFSET,
) -> tuple[FloatArray, FloatArray]:
    """Decode per-level NanoDet outputs into xyxy input-pixel boxes and class scores."""
    all_boxes: list[FloatArray] = []
    all_scores: list[FloatArray] = []
    for cls, dis, stride in zip(cls_preds, dis_preds, strides, strict=True):
        scores = cls.reshape(-1, cls.shape[-1])
        points = anchor_points(input_hw, stride, offset)
        if len(points) != len(scores):
            raise ValueError(
                f"NanoDet stride {stride}: {len(scores)} cells, expected {len(points)}"
            )
        dist = distribution_to_distance(dis.reshape(len(scores), -1)) * stride
        boxes = np.concatenate((points - dist[:, 0:2], points + dist[:, 2:4]), axis=1)
        all_boxes.append(boxes.astype(np.float32))
        all_scores.append(scores.astype(np.float32))
    return np.concatenate(all_boxes), np.concatenate(all_scores)


def preprocess_nanodet(
    image_bgr: ImageArray, input_hw: tuple[int, int]
) -> tuple[FloatArray, Letterbox]:
    """Keep-ratio resize centred in the input, then (x - mean) / std; NCHW float32 BGR."""
    canvas, placement = letterbox(image_bgr, input_hw, PAD_VALUE, centred=True)
    normalised = (canvas.astype(np.float32) - MEAN_BGR) / STD_BGR
    tensor = np.ascontiguousarray(normalised.transpose(2, 0, 1)[None], dtype=np.float32)
    return tensor, placement


@register("nanodet")
class NanodetDetector(OnnxDetector):
    """NanoDet-m COCO detector on onnxruntime."""

    def preprocess(self, image_bgr: ImageArray) -> tuple[FloatArray, Letterbox]:
        """Centred keep-ratio resize into the session's input size."""
        return preprocess_nanodet(image_bgr, self.input_hw)

    def decode(self, outputs: dict[str, FloatArray]) -> tuple[FloatArray, FloatArray]:
        """Distribution-focal decoding of the three levels."""
        cls_preds = [outputs[f"cls_pred_stride_{s}"] for s in STRIDES]
        dis_preds = [outputs[f"dis_pred_stride_{s}"] for s in STRIDES]
        return decode_nanodet(cls_preds, dis_preds, self.input_hw)
