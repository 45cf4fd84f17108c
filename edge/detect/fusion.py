"""Weighted boxes fusion of the detections of several models (pure, no I/O)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge.detect import Detection
from edge.detect.categories import family
from edge.detect.nms import iou_one_to_many

logger = logging.getLogger(__name__)


@dataclass
class _Cluster:
    """Boxes of one object from several models; `best` holds each member's top score."""

    family: str
    top: Detection
    boxes: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    best: dict[int, float] = field(default_factory=dict)

    def box(self) -> tuple[float, float, float, float]:
        """Score-weighted mean of the member boxes."""
        arr = np.asarray(self.boxes, dtype=np.float64)
        w = arr[:, 4] / max(float(arr[:, 4].sum()), 1e-12)
        x1, y1, x2, y2 = (arr[:, :4] * w[:, None]).sum(axis=0).tolist()
        return x1, y1, x2, y2


def fuse(
    per_model: Sequence[Sequence[Detection]],
    iou_threshold: float,
    mode: str = "avg",
) -> list[Detection]:
    """One detection per object seen by any model, highest fused score first.

    Boxes of the same family (bird and dog count as animals, so a box is an animal when either
    model says an animal class) that overlap by `iou_threshold` are one object. Its category
    and label are those of its highest-scoring box; its score is the mean over the models of
    each model's best score for it ("avg": a box one model misses keeps half its score) or the
    single best score ("max").
    """
    if mode not in ("avg", "max"):
        raise ValueError(f"fusion mode must be 'avg' or 'max', got {mode!r}")
    n_models = len(per_model)
    tagged = [(d, m) for m, dets in enumerate(per_model) for d in dets]
    tagged.sort(key=lambda t: -t[0].score)
    clusters: list[_Cluster] = []
    for det, model in tagged:
        fam = family(det.category)
        match: _Cluster | None = None
        candidates = [c for c in clusters if c.family == fam]
        if candidates:
            boxes = np.asarray([c.box() for c in candidates], dtype=np.float32)
            box = np.asarray([det.x1, det.y1, det.x2, det.y2], dtype=np.float32)
            ious = iou_one_to_many(box, boxes)
            best = int(np.argmax(ious))
            if ious[best] >= iou_threshold:
                match = candidates[best]
        if match is None:
            match = _Cluster(family=fam, top=det)
            clusters.append(match)
        match.boxes.append((det.x1, det.y1, det.x2, det.y2, det.score))
        match.best[model] = max(match.best.get(model, 0.0), det.score)
    out: list[Detection] = []
    for c in clusters:
        member_scores = list(c.best.values())
        score = sum(member_scores) / max(n_models, 1) if mode == "avg" else max(member_scores)
        x1, y1, x2, y2 = c.box()
        top = c.top
        out.append(Detection(x1, y1, x2, y2, score, top.class_id, top.label, top.category))
    out.sort(key=lambda d: -d.score)
    return out
