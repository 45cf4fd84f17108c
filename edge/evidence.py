"""Evidence images: a full frame with boxes and labels drawn, and a crop per box, on a bounded disk.

Evidence is what a reviewer looks at before confirming an anomaly, so every detection that leads
to an event keeps its picture. When the size limit is reached, pictures of low-severity events go
first (those already uploaded to central before those not yet uploaded, oldest first); pictures of
`alert` and `critical` events are never pruned.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from broker.payloads import EVIDENCE_CROP_MARGIN, EVIDENCE_MAX_SIDE, Category, Severity
from edge.detect import Detection
from edge.outbox.sqlite import transaction

log = logging.getLogger(__name__)

JPEG_QUALITY = 85  # a reviewer must see plumage and posture; 85 keeps a 1080p frame near 300 kB
MAX_SIDE = EVIDENCE_MAX_SIDE  # larger camera-trap frames are scaled down: evidence, not archive
CROP_MARGIN = EVIDENCE_CROP_MARGIN
# Usage above this share of the limit logs a warning (once per crossing) and sets near_limit, so
# an operator hears before pruning starts; lower warns earlier but more often on a busy node.
NEAR_LIMIT_SHARE = 0.9
INDEX_NAME = "index.db"  # sidecar index beside the images: file -> severity, uploaded
KEPT_SEVERITIES = frozenset({Severity.ALERT, Severity.CRITICAL})  # never pruned
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
class SavedFile:
    """One evidence file as written, with its digest for the upload."""

    path: Path
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class EvidenceFiles:
    """The files written for one event."""

    frame: Path
    crops: tuple[Path, ...]
    saved: tuple[SavedFile, ...] = ()


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


_INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    severity TEXT NOT NULL,
    uploaded INTEGER NOT NULL DEFAULT 0,
    saved_at REAL NOT NULL
);
"""


class EvidenceStore:
    """Writes evidence under `root/<camera>/<YYYY-MM-DD>/` and keeps the folder under `limit_mb`."""

    def __init__(self, root: Path, limit_mb: float = 2000.0) -> None:
        self.root = root
        self.limit_bytes = int(limit_mb * 1e6)
        self.near_limit = False
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._index = sqlite3.connect(
            root / INDEX_NAME, check_same_thread=False, isolation_level=None
        )
        # 1 KiB pages: each commit writes its pages whole to the WAL, so a new index writes ~25%
        # less a day than with 4 KiB (benchmarks/write_volume.py); an existing index keeps its
        # size. synchronous stays FULL (SQLite's default): which files are alert evidence, never
        # pruned, is known only here and cannot be rebuilt from the files.
        self._index.execute("PRAGMA page_size=1024")
        self._index.execute("PRAGMA journal_mode=WAL")
        self._index.executescript(_INDEX_SCHEMA)
        # Bytes held, scanned once here and then kept up to date, so that saving an image does
        # not walk thousands of files on an SD card; a full scan runs only to prune.
        self._total = self.usage_bytes()
        self._check_near_limit(self._total)

    def close(self) -> None:
        """Close the index."""
        with self._lock:
            self._index.close()

    def save(
        self,
        *,
        image: Image,
        detections: Sequence[Detection],
        camera: str,
        day: str,
        stem: str,
        labels: Sequence[str] | None = None,
        severity: Severity = Severity.INFO,
    ) -> EvidenceFiles:
        """Write the annotated frame and one crop per detection (atomically, file by file)."""
        folder = self.root / camera / day
        folder.mkdir(parents=True, exist_ok=True)
        frame = folder / f"{stem}.jpg"
        saved = [self._write(frame, _shrink(draw(image, detections, labels)))]
        crops = []
        for i, d in enumerate(detections):
            path = folder / f"{stem}_crop{i}.jpg"
            saved.append(self._write(path, crop(image, d)))
            crops.append(path)
        now = time.time()
        with self._lock, transaction(self._index) as cur:  # one commit for frame and crops
            cur.executemany(
                "INSERT OR REPLACE INTO files (path, severity, uploaded, saved_at)"
                " VALUES (?, ?, 0, ?)",
                [(self._key(f.path), severity.value, now) for f in saved],
            )
        self._total += sum(f.size for f in saved)
        # The usage this save reached, before any pruning: one save can jump from under the
        # warning share to over the limit, and the warning must not be lost to the pruning.
        self._check_near_limit(self._total)
        if self._total > self.limit_bytes:
            self.enforce_limit()
        return EvidenceFiles(frame, tuple(crops), tuple(saved))

    def protect(self, path: Path, severity: Severity) -> None:
        """Raise a saved file's retention class (an earlier frame now evidence of an alert)."""
        with self._lock:
            self._index.execute(
                "UPDATE files SET severity=? WHERE path=?", (severity.value, self._key(path))
            )

    def _key(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    @staticmethod
    def _write(path: Path, image: Image) -> SavedFile:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OSError(f"cannot encode evidence {path.name}")
        data = buf.tobytes()
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except BaseException:  # a partial file (disk full) would hold space no index knows of
            tmp.unlink(missing_ok=True)
            raise
        return SavedFile(path, hashlib.sha256(data).hexdigest(), len(data))

    def mark_uploaded(self, path: Path) -> None:
        """Record that central holds this file, so it may be pruned before not-uploaded ones."""
        with self._lock:
            self._index.execute("UPDATE files SET uploaded=1 WHERE path=?", (self._key(path),))

    @property
    def held_bytes(self) -> int:
        """Bytes the evidence folder holds, as counted since start (no walk of the folder)."""
        return self._total

    def usage_bytes(self) -> int:
        """Bytes the evidence folder holds (walks the folder)."""
        return sum(p.stat().st_size for p in self.root.rglob("*.jpg"))

    def enforce_limit(self) -> list[Path]:
        """Prune low-severity evidence (uploaded first, then oldest) until under the limit.

        Files of alert and critical events stay even over the limit; returns what went.
        """
        with self._lock:
            index = {
                str(r[0]): (str(r[1]), bool(r[2]))
                for r in self._index.execute("SELECT path, severity, uploaded FROM files")
            }
        files: list[tuple[int, float, int, Path]] = []  # (class, mtime, size, path)
        total = 0
        for p in self.root.rglob("*.jpg"):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            total += st.st_size
            # Files not in the index (older versions) count as low severity, not uploaded.
            severity, uploaded = index.get(self._key(p), (Severity.INFO.value, False))
            if severity in KEPT_SEVERITIES:
                continue
            files.append((0 if uploaded else 1, st.st_mtime, st.st_size, p))
        files.sort(key=lambda f: (f[0], f[1]))
        removed: list[Path] = []
        not_uploaded = 0
        for cls, _mtime, size, p in files:
            if total <= self.limit_bytes:
                break
            p.unlink(missing_ok=True)
            total -= size
            removed.append(p)
            not_uploaded += cls
            log.info("evidence pruned: %s (%s)", p, "not uploaded" if cls else "uploaded")
        if removed:
            with self._lock, transaction(self._index) as cur:
                cur.executemany(
                    "DELETE FROM files WHERE path=?", [(self._key(p),) for p in removed]
                )
            log.warning(
                "evidence over %.1f MB: pruned %d low-severity file(s), %d of them not uploaded",
                self.limit_bytes / 1e6,
                len(removed),
                not_uploaded,
            )
        if total > self.limit_bytes:
            log.error(
                "evidence at %.1f MB is over its %.1f MB limit with only alert/critical files"
                " left; they are kept",
                total / 1e6,
                self.limit_bytes / 1e6,
            )
        self._total = total
        if total >= NEAR_LIMIT_SHARE * self.limit_bytes:
            self._check_near_limit(total)  # pruning only ever raises the warning, never clears it
        return removed

    def _check_near_limit(self, total: int) -> None:
        near = total >= NEAR_LIMIT_SHARE * self.limit_bytes
        if near and not self.near_limit:
            log.warning(
                "evidence disk near its limit: %.1f of %.1f MB used",
                total / 1e6,
                self.limit_bytes / 1e6,
            )
        self.near_limit = near
