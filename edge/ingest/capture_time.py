"""Capture time of camera-trap media: EXIF DateTimeOriginal (with its offset when the camera
wrote one, else in the camera's zone), else the file time."""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from PIL import Image

log = logging.getLogger(__name__)

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME_DIGITIZED = 0x9004
_DATETIME = 0x0132
_OFFSET_TIME = 0x9010  # offset of DateTime, also the fallback for the other two
_OFFSET_TIME_ORIGINAL = 0x9011
_OFFSET_TIME_DIGITIZED = 0x9012
_EXIF_FORMAT = "%Y:%m:%d %H:%M:%S"
_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")

# A camera whose clock was reset (battery swap, no coin cell) starts again at its factory date,
# often 2000-01-01 or 2010-01-01; no camera of this network took a picture before this day.
EARLIEST_PLAUSIBLE = date(2015, 1, 1)
# Camera clocks drift and zones get mis-set by hours, never by more than a day.
MAX_AHEAD = timedelta(days=1)

TimeSource = Literal["exif", "file"]


class ExifUnreadable(Exception):
    """The EXIF block is damaged; the message says how."""


def exif_datetime(path: Path, tz: ZoneInfo) -> datetime | None:
    """EXIF capture time, aware: with the offset the camera wrote (OffsetTimeOriginal, else
    OffsetTime), else in `tz`, the zone the camera clock keeps. None when absent.

    Raises ExifUnreadable when the EXIF block is there but cannot be parsed.
    """
    try:
        im = Image.open(path)
    except (OSError, ValueError):  # not an image (a video clip) or unreadable: no EXIF
        return None
    with im:
        try:
            exif = im.getexif()
            sub = exif.get_ifd(_EXIF_IFD)
            offset_any = sub.get(_OFFSET_TIME)
            candidates = (
                (sub.get(_DATETIME_ORIGINAL), sub.get(_OFFSET_TIME_ORIGINAL) or offset_any),
                (sub.get(_DATETIME_DIGITIZED), sub.get(_OFFSET_TIME_DIGITIZED) or offset_any),
                (exif.get(_DATETIME), offset_any),
            )
        except Exception as exc:  # Pillow's EXIF parser raises SyntaxError, struct.error, ...
            raise ExifUnreadable(f"{type(exc).__name__}: {exc}") from exc
    raw, offset = next(((t, o) for t, o in candidates if t), (None, None))
    if not isinstance(raw, str):
        return None
    try:
        naive = datetime.strptime(raw.strip("\x00 ").strip(), _EXIF_FORMAT)
    except ValueError:
        log.warning("%s: unreadable EXIF time %r, using the file time", path.name, raw)
        return None
    return naive.replace(tzinfo=_zone(path, offset) or tz)


def _zone(path: Path, raw: object) -> timezone | None:
    """The fixed offset an EXIF OffsetTime* tag gives ("+08:00"), None when blank or odd."""
    if not isinstance(raw, str) or not raw.strip("\x00 :"):
        return None
    m = _OFFSET.fullmatch(raw.strip("\x00 "))
    if m is None or int(m[2]) > 14 or int(m[3]) > 59:
        log.warning("%s: unreadable EXIF offset %r, taking the camera's zone", path.name, raw)
        return None
    delta = timedelta(hours=int(m[2]), minutes=int(m[3]))
    return timezone(-delta if m[1] == "-" else delta)


def capture_time(
    path: Path, tz: ZoneInfo, *, earliest: date = EARLIEST_PLAUSIBLE
) -> tuple[datetime, TimeSource]:
    """When the picture was taken, in `tz`, and where that time came from.

    EXIF when present and plausible; the file's modification time when EXIF is absent,
    damaged, before `earliest` (a reset camera clock) or more than a day in the future. Each
    fallback is logged with its reason.
    """
    try:
        when = exif_datetime(path, tz)
    except ExifUnreadable as exc:
        when = None
        reason = f"EXIF unreadable ({exc})"
        level = logging.WARNING
    else:
        reason, level = "no EXIF capture time", logging.INFO
        if when is not None:
            reason, level = _implausible(when, earliest), logging.WARNING
    if when is not None and not reason:
        return when.astimezone(tz), "exif"
    file_time = datetime.fromtimestamp(path.stat().st_mtime, tz)
    log.log(level, "%s: %s, using the file time %s", path.name, reason, file_time.isoformat())
    return file_time, "file"


def _implausible(when: datetime, earliest: date) -> str:
    """Why an EXIF time cannot be right, or '' when it can."""
    if when.date() < earliest:
        return (
            f"EXIF capture time {when.isoformat()} is before {earliest.isoformat()}: "
            "the camera clock was probably reset (battery swap?)"
        )
    if when > datetime.now(UTC) + MAX_AHEAD:
        return (
            f"EXIF capture time {when.isoformat()} is more than a day in the future: "
            "the camera clock is wrong"
        )
    return ""
