"""Ingest stage: where media (camera-trap images) enter the node, with their capture time."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


class MediaError(Exception):
    """A media file that cannot be used (corrupt, truncated, unreadable); the message says why."""


@dataclass(frozen=True, slots=True)
class MediaItem:
    """One still image from one camera, with the time the camera took it."""

    path: Path
    camera: str
    captured_at: datetime  # aware
    time_source: Literal["exif", "file"]
    sha256: str


class Source(Protocol):
    """Anything that yields media items in capture-time order."""

    def items(self) -> Iterator[MediaItem]:
        """Yield the next media items."""
        ...


def file_sha256(path: Path) -> str:
    """Content hash used to skip exact duplicates (the same photo imported twice)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_jpeg_complete(data: bytes) -> None:
    from io import BytesIO

    from PIL import Image, ImageFile, UnidentifiedImageError

    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(BytesIO(data)) as im:
            im.load()
    except UnidentifiedImageError as exc:
        raise MediaError("not a decodable image") from exc
    except (OSError, SyntaxError) as exc:
        raise MediaError(f"truncated JPEG ({exc})") from exc


def load_image(path: Path) -> np.ndarray:
    """Decode an image to BGR, raising MediaError for empty, corrupt or truncated files."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MediaError(f"cannot read: {exc.strerror or exc}") from exc
    if not data:
        raise MediaError("empty file")
    if path.suffix.lower() in {".jpg", ".jpeg"} and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        # OpenCV fills a truncated JPEG with grey and only warns; a half-uploaded camera-trap
        # frame must not be analysed as if it were whole. Some cameras append data after the
        # end-of-image marker, so a missing marker at the very end is checked by a full decode.
        _check_jpeg_complete(data)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise MediaError("not a decodable image")
    return image
