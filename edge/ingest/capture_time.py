"""Capture time of camera-trap media: EXIF DateTimeOriginal in the camera's zone, else file time."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867
_DATETIME_DIGITIZED = 36868
_DATETIME = 306
_EXIF_FORMAT = "%Y:%m:%d %H:%M:%S"


def exif_datetime(path: Path) -> datetime | None:
    """Naive EXIF capture time (camera clock), or None when absent or unreadable."""
    try:
        with Image.open(path) as im:
            exif = im.getexif()
            sub = exif.get_ifd(_EXIF_IFD)
            raw = sub.get(_DATETIME_ORIGINAL) or sub.get(_DATETIME_DIGITIZED) or exif.get(_DATETIME)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    if not isinstance(raw, str):
        return None
    try:
        return datetime.strptime(raw.strip("\x00 ").strip(), _EXIF_FORMAT)
    except ValueError:
        log.warning("%s: unreadable EXIF time %r, using the file time", path.name, raw)
        return None


def capture_time(path: Path, tz: ZoneInfo) -> tuple[datetime, Literal["exif", "file"]]:
    """When the picture was taken: EXIF (camera clocks keep local time, so `tz` applies),
    falling back to the file's modification time."""
    naive = exif_datetime(path)
    if naive is not None:
        return naive.replace(tzinfo=tz), "exif"
    return datetime.fromtimestamp(path.stat().st_mtime, tz), "file"
