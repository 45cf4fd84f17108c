"""Pure geometry of normalised boxes and zone polygons (0..1, top-left origin)."""

from __future__ import annotations

from collections.abc import Sequence

NormBox = tuple[float, float, float, float]  # x, y, w, h normalised


def bottom_centre(box: NormBox) -> tuple[float, float]:
    """Bottom-centre point of a box: where an animal or person stands."""
    x, y, w, h = box
    return x + w / 2, y + h


def inside(point: tuple[float, float], polygon: Sequence[tuple[float, float]]) -> bool:
    """Whether a point lies inside a polygon (ray casting; points on an edge may go either way)."""
    px, py = point
    result = False
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        if (y1 > py) != (y2 > py):
            cross = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
            if px < cross:
                result = not result
    return result


def box_inside(box: NormBox, polygon: Sequence[tuple[float, float]]) -> bool:
    """A box counts as inside a zone when its bottom-centre point is inside."""
    return inside(bottom_centre(box), polygon)


def box_iou(a: NormBox, b: NormBox) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
