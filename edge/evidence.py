"""Evidence images: a full frame with boxes and labels drawn, and a crop per box, on a bounded disk.

Evidence is what a reviewer looks at before confirming an anomaly, so every detection that leads
to an event keeps its picture; the oldest pictures go first when the size limit is reached.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from broker.payloads import Category
from edge.detect import Detection

log = logging.getLogger(__name__)

JPEG_QUALITY = 85  # a reviewer must see plumage and posture; 85 keeps a 1080p frame near 300 kB
MAX_SIDE = 1920  # larger camera-trap frames are scaled down: evidence, not archive
CROP_MARGIN = 0.15
COLOURS: dict[Category, tuple[int, int, int]] = {  # BGR
    Category.ANIMAL: (0, 200, 255),
    Category.BIRD: (0, 255, 0),
    Category.DOG: (0, 128, 255),
    Category.PERSON: (0, 0, 255),
    Category.VEHICLE: (255, 0, 255),
    Category.CAMERA: (255, 255, 255),
}

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class EvidenceFiles:
    """The files written for one event."""

    frame: Path
    crops: tuple[Path, ...]


def draw(
    image: Image, detections: Sequence[Detection], labels: Sequence[str] | None = None
) -> Image:
    """A copy of the image with each box and its label (ASCII: Latin names, categories) drawn."""
    out = image.copy()
    thickness = max(2, round(max(out.shape[:2]) / 500))
    scale = max(0.5, max(out.shape[:2]) / 1600)
    for i, d in enumerate(detections):
        colour = COLOURS.get(d.category, (255, 255, 255))
        p1, p2 = (round(d.x1), round(d.y1)), (round(d.x2), round(d.y2))
        cv2.rectangle(out, p1, p2, colour, thickness)
        text = labels[i] if labels is not None else f"{d.category.value} {d.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        y = max(p1[1], th + base)
        cv2.rectangle(out, (p1[0], y - th - base), (p1[0] + tw, y), colour, -1)
        cv2.putText(
            out,
            text,
            (p1[0], y - base),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            thickness,
            cv2.LINE_AA,
        )
    return out


def crop(image: Image, d: Detection, margin: float = CROP_MARGIN) -> Image:
    """The box with a margin, clipped to the image, never empty."""
    h, w = image.shape[:2]
    mx, my = (d.x2 - d.x1) * margin, (d.y2 - d.y1) * margin
    x1, y1 = max(0, int(d.x1 - mx)), max(0, int(d.y1 - my))
    x2, y2 = min(w, int(np.ceil(d.x2 + mx))), min(h, int(np.ceil(d.y2 + my)))
    if x2 <= x1 or y2 <= y1:
        x1, y1, x2, y2 = 0, 0, w, h
    return image[y1:y2, x1:x2]


def _shrink(image: Image) -> Image:
    side = max(image.shape[:2])
    if side <= MAX_SIDE:
        return image
    f = MAX_SIDE / side
    size = (round(image.shape[1] * f), round(image.shape[0] * f))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


class EvidenceStore:
    """Writes evidence under `root/<camera>/<YYYY-MM-DD>/` and keeps the folder under `limit_mb`."""

    def __init__(self, root: Path, limit_mb: float = 2000.0) -> None:
        self.root = root
        self.limit_bytes = int(limit_mb * 1e6)
        root.mkdir(parents=True, exist_ok=True)

    def save(
        self,
        *,
        image: Image,
        detections: Sequence[Detection],
        camera: str,
        day: str,
        stem: str,
        labels: Sequence[str] | None = None,
    ) -> EvidenceFiles:
        """Write the annotated frame and one crop per detection (atomically, file by file)."""
        folder = self.root / camera / day
        folder.mkdir(parents=True, exist_ok=True)
        frame = folder / f"{stem}.jpg"
        self._write(frame, _shrink(draw(image, detections, labels)))
        crops = []
        for i, d in enumerate(detections):
            path = folder / f"{stem}_crop{i}.jpg"
            self._write(path, crop(image, d))
            crops.append(path)
        self.enforce_limit()
        return EvidenceFiles(frame, tuple(crops))

    @staticmethod
    def _write(path: Path, image: Image) -> None:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OSError(f"cannot encode evidence {path.name}")
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(buf.tobytes())
        os.replace(tmp, path)

    def usage_bytes(self) -> int:
        """Bytes the evidence folder holds."""
        return sum(p.stat().st_size for p in self.root.rglob("*.jpg"))

    def enforce_limit(self) -> list[Path]:
        """Delete the oldest evidence until the folder is under its limit; returns what went."""
        files = sorted(self.root.rglob("*.jpg"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        removed: list[Path] = []
        for p in files:
            if total <= self.limit_bytes:
                break
            total -= p.stat().st_size
            p.unlink(missing_ok=True)
            removed.append(p)
        if removed:
            log.warning(
                "evidence over %.0f MB: pruned %d oldest file(s)",
                self.limit_bytes / 1e6,
                len(removed),
            )
        return removed
