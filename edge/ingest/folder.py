"""Folder sources: a one-off scan of a directory and a watched drop folder (FTP/SD imports)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from edge.ingest import IMAGE_SUFFIXES, MediaItem, file_sha256
from edge.ingest.capture_time import capture_time
from edge.ingest.video import VIDEO_SUFFIXES

log = logging.getLogger(__name__)

# Upload tools write under a temporary name and rename when done; such files are never taken.
TEMP_SUFFIXES = frozenset({".part", ".tmp", ".filepart", ".crdownload", ".partial"})


def is_candidate(path: Path) -> bool:
    """An image or video file that is not hidden and not an upload in progress."""
    return (
        path.is_file()
        and not path.name.startswith(".")
        and path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
        and path.suffix.lower() not in TEMP_SUFFIXES
    )


def media_item(path: Path, camera: str, tz: ZoneInfo) -> MediaItem:
    """Describe one file (capture time, hash)."""
    when, source = capture_time(path, tz)
    if source == "file":
        log.info("%s: no EXIF capture time, using the file time %s", path.name, when.isoformat())
    return MediaItem(path, camera, when, source, file_sha256(path))


def scan_folder(directory: Path, camera: str, tz: ZoneInfo) -> list[MediaItem]:
    """All images of a folder (recursively) in capture-time order, ties broken by name."""
    paths = [p for p in directory.rglob("*") if is_candidate(p)]
    items = [media_item(p, camera, tz) for p in paths]
    items.sort(key=lambda m: (m.captured_at, m.path.name))
    return items


@dataclass
class DropFolder:
    """A watched folder: a file is taken once its size and mtime stayed the same for
    `settle_s` (an FTP upload in progress keeps growing)."""

    directory: Path
    camera: str
    tz: ZoneInfo
    settle_s: float = 2.0
    _seen: dict[Path, tuple[int, float, float]] = field(default_factory=dict)

    def poll(self) -> list[MediaItem]:
        """Files that became stable since the last poll, in capture-time order."""
        now = time.monotonic()
        ready: list[MediaItem] = []
        current: set[Path] = set()
        for path in self.directory.rglob("*"):
            if not is_candidate(path):
                continue
            current.add(path)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            sig = (st.st_size, st.st_mtime)
            prev = self._seen.get(path)
            if prev is None or (prev[0], prev[1]) != sig:
                self._seen[path] = (sig[0], sig[1], now)
                continue
            if now - prev[2] >= self.settle_s and st.st_size > 0:
                try:
                    ready.append(media_item(path, self.camera, self.tz))
                except OSError as exc:
                    log.warning("%s: cannot read yet: %s", path, exc)
        for gone in set(self._seen) - current:
            del self._seen[gone]
        for item in ready:
            self._seen.pop(item.path, None)
        ready.sort(key=lambda m: (m.captured_at, m.path.name))
        return ready

    def items(self) -> Iterator[MediaItem]:
        """One poll's worth of ready items."""
        yield from self.poll()
