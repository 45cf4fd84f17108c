"""JPEG thumbnails and box crops of evidence images (Pillow), cached beside the original:
a phone on 4G gets 20-60 KB instead of a 1-3 MB camera-trap still."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from broker.payloads import EVIDENCE_CROP_MARGIN

THUMB_PX = 640
CROP_PX = 320
CROP_MARGIN = EVIDENCE_CROP_MARGIN  # share of the box added on every side, as the node cuts
QUALITY = 75
CACHE_DIR = ".console"


def _cached(original: Path, suffix: str) -> Path:
    folder = original.parent / CACHE_DIR
    folder.mkdir(exist_ok=True)
    return folder / f"{original.name}.{suffix}.jpg"  # the full name: a.jpg and a.png differ


def _save(image: Image.Image, target: Path) -> Path:
    # written under a temporary name and renamed: two requests at once never see half a file
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    os.close(fd)
    try:
        image.convert("RGB").save(tmp, "JPEG", quality=QUALITY, optimize=True)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def thumbnail(original: Path) -> Path:
    target = _cached(original, "thumb")
    if target.exists() and target.stat().st_mtime >= original.stat().st_mtime:
        return target
    with Image.open(original) as opened:
        im = ImageOps.exif_transpose(opened)
        im.thumbnail((THUMB_PX, THUMB_PX))
        return _save(im, target)


def crop(original: Path, box: dict[str, Any], *, index: int) -> Path:
    """Box `index` of the event (normalised x, y, w, h) with a margin, at most CROP_PX."""
    target = _cached(original, f"crop{index}")
    if target.exists() and target.stat().st_mtime >= original.stat().st_mtime:
        return target
    with Image.open(original) as im:
        W, H = im.size
        x, y, w, h = (float(box[k]) for k in ("x", "y", "w", "h"))
        mx, my = w * CROP_MARGIN, h * CROP_MARGIN
        left, top = max(0.0, x - mx), max(0.0, y - my)
        right, bottom = min(1.0, x + w + mx), min(1.0, y + h + my)
        part = im.crop(
            (
                int(left * W),
                int(top * H),
                max(int(right * W), int(left * W) + 1),
                max(int(bottom * H), int(top * H) + 1),
            )
        )
        part.thumbnail((CROP_PX, CROP_PX))
        return _save(part, target)
