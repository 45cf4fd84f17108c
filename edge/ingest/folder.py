"""Folder sources: a one-off scan of a directory and a watched drop folder (FTP/SD imports)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from edge.ingest import IMAGE_SUFFIXES, MediaItem, file_sha256
from edge.ingest.capture_time import EARLIEST_PLAUSIBLE, capture_time
from edge.ingest.video import VIDEO_SUFFIXES

log = logging.getLogger(__name__)

# Upload tools write under a temporary name and rename when done; such files are never taken.
TEMP_SUFFIXES = frozenset({".part", ".tmp", ".filepart", ".crdownload", ".partial"})
# A file that could not be described (a bug, a file no reader expected) is tried again after
# this long: soon enough to pick it up once fixed, rare enough not to flood the log.
RETRY_S = 300.0


def is_candidate(path: Path) -> bool:
    """An image or video file that is not hidden and not an upload in progress."""
    return (
        path.is_file()
        and not path.name.startswith(".")
        and path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
        and path.suffix.lower() not in TEMP_SUFFIXES
    )


def media_item(
    path: Path, camera: str, tz: ZoneInfo, *, earliest: date = EARLIEST_PLAUSIBLE
) -> MediaItem:
    """Describe one file (capture time, hash); EXIF times before `earliest` are not believed."""
    when, source = capture_time(path, tz, earliest=earliest)
    return MediaItem(path, camera, when, source, file_sha256(path))


def scan_folder(
    directory: Path, camera: str, tz: ZoneInfo, *, earliest: date = EARLIEST_PLAUSIBLE
) -> list[MediaItem]:
    """All images of a folder (recursively) in capture-time order, ties broken by name."""
    paths = [p for p in directory.rglob("*") if is_candidate(p)]
    items = [media_item(p, camera, tz, earliest=earliest) for p in paths]
    items.sort(key=lambda m: (m.captured_at, m.path.name))
    return items


@dataclass
class _Watched:
    """What the watcher knows of one file in its folder."""

    size: int
    mtime: float
    since: float  # monotonic time this size and mtime were first seen
    not_before: float = 0.0  # monotonic: not offered again before this, unless the file changes
    held: bool = False  # did not decode; waits for its upload to resume or for the grace period


@dataclass
class DropFolder:
    """A watched folder: a file is taken once its size and mtime stayed the same for
    `settle_s` (an FTP upload in progress keeps growing).

    A taken file that does not decode may be an upload that stalled longer than `settle_s`
    (a weak 4G link): `hold()` leaves it in place until it changes (the upload resumed) or
    has stayed unchanged for `quarantine_grace_s`, and only then may it be quarantined.

    `clock` gives monotonic seconds for those durations; tests pass a fake one they advance.
    """

    directory: Path
    camera: str
    tz: ZoneInfo
    settle_s: float = 2.0
    quarantine_grace_s: float = 600.0
    earliest: date = EARLIEST_PLAUSIBLE
    clock: Callable[[], float] = time.monotonic
    _seen: dict[Path, _Watched] = field(default_factory=dict)

    def poll(self, progress: Callable[[], None] | None = None) -> list[MediaItem]:
        """Files that became stable since the last poll, in capture-time order.

        One file that cannot be described (unreadable, or a bug) is logged and skipped; it
        never hides the others. `progress` is called before each file is read and hashed (an
        SD-card import of thousands of files takes minutes: the node's watchdog sees it move).
        """
        now = self.clock()
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
            w = self._seen.get(path)
            if w is None or (w.size, w.mtime) != (st.st_size, st.st_mtime):
                self._seen[path] = _Watched(st.st_size, st.st_mtime, now)
                continue
            if now < w.not_before or now - w.since < self.settle_s or st.st_size == 0:
                continue
            # offered now; if it is still here next time, it waits for settle_s again
            w.not_before = now + self.settle_s
            if progress is not None:
                progress()
            try:
                ready.append(media_item(path, self.camera, self.tz, earliest=self.earliest))
            except OSError as exc:
                log.warning("%s: cannot read yet: %s", path, exc)
            except Exception:  # a bug or a file no reader expected: the folder goes on
                log.exception("%s: cannot be described; tried again in %.0f s", path, RETRY_S)
                w.not_before = now + RETRY_S
        for gone in set(self._seen) - current:
            del self._seen[gone]
        ready.sort(key=lambda m: (m.captured_at, m.path.name))
        return ready

    def hold(self, path: Path, reason: str) -> bool:
        """Keep a file that did not decode in place while it may still be arriving.

        True: leave it; it is offered again when it changes, or once it has been unchanged for
        `quarantine_grace_s`. False: it has been unchanged that long, so it is really broken.
        """
        w = self._seen.get(path)
        if w is None:
            return False
        if self.clock() - w.since >= self.quarantine_grace_s:
            return False
        if not w.held:  # once per upload stall, not on every poll
            log.info(
                "%s: does not decode (%s); left in place in case its upload stalled,"
                " quarantined if still unchanged after %.0f s",
                path.name,
                reason,
                self.quarantine_grace_s,
            )
            w.held = True
        w.not_before = w.since + self.quarantine_grace_s
        return True

    def retry_later(self, path: Path, delay_s: float) -> None:
        """Offer a file again only after `delay_s` (its processing failed), or once it changes."""
        w = self._seen.get(path)
        if w is not None:
            w.not_before = self.clock() + delay_s

    def items(self) -> Iterator[MediaItem]:
        """One poll's worth of ready items."""
        yield from self.poll()
