"""Pure post-processing shared by the back-ends: letterbox geometry, thresholds, NMS, results."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt

from broker.payloads import Category
from edge.detect import Detection
from edge.detect.categories import ANIMAL_CATEGORIES
from edge.detect.nms import intersections, nms

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.intp]
ImageArray = npt.NDArray[np.uint8]
CategoryOf = Callable[[int], Category | None]

# Candidates entering NMS are capped so a noisy frame cannot make NMS quadratic-slow.
MAX_CANDIDATES = 2000
# Well below broker.payloads.MAX_BOXES; a real frame never holds more wildlife than this.
MAX_DETECTIONS = 100


# Tiling: tiles overlap by this fraction of their side so an animal cut by one is whole in the next.
TILE_OVERLAP = 0.25
# Frames at most this much wider than tall are not tiled (the full frame is enough).
TILE_MIN_ASPECT = 1.2
# A tile box within this many pixels of an inner tile edge is a cut object and dropped.
CUT_MARGIN_PX = 2.0
# A tile box counts as confirmed when a full-frame box of the same family with at least this
# score covers this fraction of the smaller of the two boxes. Fixed (not the final threshold)
# so that raising a threshold never changes which boxes count as confirmed.
CONFIRM_SCORE = 0.1
CONFIRM_OVERLAP = 0.5


@dataclass(frozen=True)
class Window:
    """A rectangle of the original image, in pixels (x2, y2 exclusive)."""

    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True)
class Letterbox:
    """How an image was placed in the network input: scaled by `scale`, then shifted by pad."""

    scale: float
    pad_x: float
    pad_y: float

    def to_original(self, boxes: FloatArray, width: int, height: int) -> FloatArray:
        """Map xyxy boxes from network-input pixels back to original pixels, clipped."""
        out = boxes.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0.0, float(width))
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0.0, float(height))
        return out


def check_image(image: object) -> tuple[int, int]:
    """(height, width) of a usable HxWx3 uint8 BGR image; ValueError otherwise."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise ValueError(f"image is empty (shape {image.shape}); was it decoded?")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be HxWx3 BGR, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    return int(image.shape[0]), int(image.shape[1])


def letterbox(
    image: ImageArray, size_hw: tuple[int, int], pad_value: int, centred: bool
) -> tuple[ImageArray, Letterbox]:
    """Resize keeping the aspect ratio into a size_hw canvas filled with pad_value."""
    h, w = image.shape[:2]
    in_h, in_w = size_hw
    scale = min(in_h / h, in_w / w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    pad_x = (in_w - new_w) // 2 if centred else 0
    pad_y = (in_h - new_h) // 2 if centred else 0
    canvas = np.full((in_h, in_w, 3), pad_value, dtype=np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    return canvas, Letterbox(scale=scale, pad_x=float(pad_x), pad_y=float(pad_y))


def tile_windows(width: int, height: int, overlap: float = TILE_OVERLAP) -> list[Window]:
    """Square windows (side = the short image side) along the long side, overlapping.

    Wide camera-trap frames shrink small animals to a few pixels at 416x416; square tiles
    roughly double the resolution the network sees. Returns [] for near-square images.
    """
    side = min(width, height)
    long_side = max(width, height)
    if long_side <= side * TILE_MIN_ASPECT:
        return []
    step = max(1, int(side * (1.0 - overlap)))
    count = max(2, -(-(long_side - side) // step) + 1)
    starts = np.linspace(0, long_side - side, count).round().astype(int).tolist()
    if width >= height:
        return [Window(x, 0, x + side, side) for x in starts]
    return [Window(0, y, side, y + side) for y in starts]


def drop_cut_boxes(
    boxes: FloatArray, window: Window, width: int, height: int, margin: float = CUT_MARGIN_PX
) -> npt.NDArray[np.bool_]:
    """Mask of tile boxes that do not touch a tile edge lying inside the image (cut objects)."""
    keep = np.ones(len(boxes), dtype=bool)
    if window.x1 > 0:
        keep &= boxes[:, 0] > window.x1 + margin
    if window.x2 < width:
        keep &= boxes[:, 2] < window.x2 - margin
    if window.y1 > 0:
        keep &= boxes[:, 1] > window.y1 + margin
    if window.y2 < height:
        keep &= boxes[:, 3] < window.y2 - margin
    return keep


def overlap_of_smaller(box: FloatArray, boxes: FloatArray) -> FloatArray:
    """Intersection of one xyxy box with each of `boxes`, over the smaller of the two areas."""
    inter, area, areas = intersections(box, boxes)
    smaller = np.maximum(np.minimum(area, areas), 1e-6)
    out: FloatArray = (inter / smaller).astype(np.float32)
    return out


def penalise_unconfirmed(
    tile_boxes: FloatArray,
    tile_scores: FloatArray,
    tile_families: Sequence[str | None],
    full_boxes: FloatArray,
    full_families: Sequence[str | None],
    factor: float,
    min_overlap: float = CONFIRM_OVERLAP,
) -> FloatArray:
    """Tile scores, multiplied by `factor` where no full-frame box of the same family overlaps."""
    out = tile_scores.astype(np.float32, copy=True)
    if factor >= 1.0 or len(tile_boxes) == 0:
        return out
    fams = np.asarray(full_families, dtype=object)
    for i, (box, fam) in enumerate(zip(tile_boxes, tile_families, strict=True)):
        same = fams == fam if len(fams) else np.zeros(0, dtype=bool)
        if not same.any() or not (overlap_of_smaller(box, full_boxes[same]) >= min_overlap).any():
            out[i] *= factor
    return out


def merge(
    first: tuple[FloatArray, FloatArray, IntArray],
    second: tuple[FloatArray, FloatArray, IntArray],
    iou_threshold: float,
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Class-wise NMS over the union of two (boxes, scores, class ids) selections."""
    boxes = np.concatenate((first[0], second[0])).astype(np.float32)
    scores = np.concatenate((first[1], second[1])).astype(np.float32)
    ids = np.concatenate((first[2], second[2])).astype(np.intp)
    keep = nms(boxes, scores, ids, iou_threshold, max_keep=MAX_DETECTIONS)
    return boxes[keep], scores[keep], ids[keep]


def class_thresholds(
    num_classes: int,
    category_of: CategoryOf,
    default: float,
    overrides: dict[Category, float],
) -> FloatArray:
    """Per-class score threshold; +inf for classes whose category is ignored."""
    out = np.full(num_classes, np.inf, dtype=np.float32)
    for class_id in range(num_classes):
        category = category_of(class_id)
        if category is not None:
            out[class_id] = overrides.get(category, default)
    return out


def select(
    boxes: FloatArray,
    class_scores: FloatArray,
    thresholds: FloatArray,
    iou_threshold: float,
    max_detections: int = MAX_DETECTIONS,
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Threshold every (box, class) pair, then class-wise NMS; returns boxes, scores, class ids."""
    rows, cls = np.nonzero(class_scores >= thresholds[None, :])
    scores = class_scores[rows, cls].astype(np.float32)
    if len(scores) > MAX_CANDIDATES:
        top = np.argpartition(-scores, MAX_CANDIDATES)[:MAX_CANDIDATES]
        rows, cls, scores = rows[top], cls[top], scores[top]
    cand = boxes[rows].astype(np.float32)
    keep = nms(cand, scores, cls.astype(np.intp), iou_threshold, max_keep=max_detections)
    return cand[keep], scores[keep], cls[keep].astype(np.intp)


def to_detections(
    boxes: FloatArray,
    scores: FloatArray,
    class_ids: IntArray,
    labels: Sequence[str],
    category_of: CategoryOf,
) -> list[Detection]:
    """Build Detection objects (classes without a category are dropped)."""
    out: list[Detection] = []
    rows = zip(boxes.tolist(), scores.tolist(), class_ids.tolist(), strict=True)
    for (x1, y1, x2, y2), score, class_id in rows:
        category = category_of(class_id)
        if category is None:
            continue
        label = labels[class_id] if class_id < len(labels) else str(class_id)
        out.append(Detection(x1, y1, x2, y2, score, class_id, label, category))
    return out


def apply_thresholds(
    detections: Sequence[Detection], threshold_of: Callable[[Category], float]
) -> list[Detection]:
    """Keep detections at or above their category's threshold.

    A bird or dog box below its own threshold but at or above the animal threshold is kept
    as `animal`: the models agree it is an animal but not on which (a squirrel called
    "bird" at 0.45 is still an animal in the frame).
    """
    animal = threshold_of(Category.ANIMAL)
    out: list[Detection] = []
    for d in detections:
        if d.score >= threshold_of(d.category):
            out.append(d)
        elif d.category in ANIMAL_CATEGORIES and d.score >= animal:
            out.append(replace(d, category=Category.ANIMAL))
    return out
