"""Class-wise non-maximum suppression in vectorised numpy (pure, no I/O)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.intp]


def intersections(box: FloatArray, boxes: FloatArray) -> tuple[FloatArray, Any, FloatArray]:
    """Intersection areas of one xyxy box with each of `boxes`, its area, and theirs."""
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0.0, None) * np.clip(iy2 - iy1, 0.0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter, area, areas


def iou_one_to_many(box: FloatArray, boxes: FloatArray) -> FloatArray:
    """IoU of one xyxy box with each of `boxes` (N, 4)."""
    inter, area, areas = intersections(box, boxes)
    union = area + areas - inter
    out: FloatArray = np.where(union > 0.0, inter / np.maximum(union, 1e-12), 0.0).astype(
        np.float32
    )
    return out


def nms(
    boxes: FloatArray,
    scores: FloatArray,
    class_ids: IntArray,
    iou_threshold: float,
    max_keep: int | None = None,
) -> IntArray:
    """Indices of the boxes kept by class-wise NMS, highest score first.

    `boxes` is (N, 4) xyxy; boxes of different classes never suppress each other (they are
    shifted apart by class before a single greedy pass).
    """
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {boxes.shape}")
    if not len(boxes) == len(scores) == len(class_ids):
        raise ValueError("boxes, scores and class_ids must have the same length")
    if len(boxes) == 0:
        return np.empty(0, dtype=np.intp)
    boxes = boxes.astype(np.float32, copy=False)
    # Shift each class into its own region so one pass is class-wise.
    span = float(np.max(boxes) - np.min(boxes)) + 1.0
    shifted = boxes + (class_ids.astype(np.float32) * span)[:, None]
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        if max_keep is not None and len(keep) >= max_keep:
            break
        rest = order[1:]
        ious = iou_one_to_many(shifted[best], shifted[rest])
        order = rest[ious <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)
