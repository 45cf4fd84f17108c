"""What the node keeps on its data partition, held under a cap: the outbox, evidence images
(EvidenceStore, with a limit of its own), model releases, and the originals moved out of the
drop folders (archive, duplicates, quarantine). Originals are the only thing deleted to make
room, oldest day first; when even that cannot keep the node under its cap, new files wait in
their drop folders (nothing is lost) and storage_low is raised, long before the disk is full.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

MEDIA_AREAS = ("archive", "duplicates", "quarantine")  # data_dir/<area>/<camera>/<day>/<file>
MB = 1_000_000


class StorageSettings(BaseModel):
    """The node's share of its data partition (SD card or USB SSD)."""

    model_config = ConfigDict(extra="forbid")

    cap_mb: float = Field(
        8000.0,
        ge=50,
        description="the most WildWatch keeps under data_dir (outbox, evidence, releases, "
        "archived originals); the oldest archived originals are deleted to stay under it",
    )
    low_at: float = Field(
        0.9,
        gt=0,
        lt=1,
        description="archived originals are pruned above this share of cap_mb; storage_low is "
        "raised when what cannot be pruned reaches it",
    )
    low_free_mb: float = Field(
        1000.0,
        ge=0,
        description="storage_low when the partition has less free space than this (whoever "
        "filled it)",
    )


class CapReached(OSError):
    """The node's cap is reached and nothing is left to prune: an ENOSPC of WildWatch's own."""

    def __init__(self, used_mb: float, cap_mb: float) -> None:
        super().__init__(
            errno.ENOSPC,
            f"WildWatch data at its cap ({used_mb:.0f} of {cap_mb:.0f} MB, nothing left to prune)",
        )


class DataPartition:
    """The node's usage of `root`, scanned once at start and kept up to date as files arrive."""

    def __init__(
        self,
        root: Path,
        settings: StorageSettings,
        *,
        evidence_dir: Path,
        evidence_bytes: Callable[[], int],
        outbox_files: tuple[Path, ...],
    ) -> None:
        self.root = root
        self.settings = settings
        self._evidence_dir = evidence_dir
        self._evidence_bytes = evidence_bytes
        self._outbox_files = outbox_files
        self._media: dict[Path, int] = {}  # day folder (root/area/camera/day) -> bytes
        self._other = 0  # releases and anything else found at start
        self.pruned_days = 0
        self.scan()

    def scan(self) -> None:
        """Measure what is on disk now (at start: a day of originals is a few thousand files)."""
        media: dict[Path, int] = {}
        other = 0
        skip = {self._evidence_dir.resolve(), *(p.resolve() for p in self._outbox_files)}
        for dirpath, dirnames, filenames in os.walk(self.root):
            here = Path(dirpath)
            dirnames[:] = [d for d in dirnames if (here / d).resolve() not in skip]
            for name in filenames:
                path = here / name
                if path.resolve() in skip:
                    continue
                size = _size(path)
                day = self._day_of(path)
                if day is None:
                    other += size
                else:
                    media[day] = media.get(day, 0) + size
        self._media, self._other = media, other

    def _day_of(self, path: Path) -> Path | None:
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            return None
        if len(parts) >= 4 and parts[0] in MEDIA_AREAS:
            return self.root.joinpath(*parts[:3])
        return None

    def added(self, path: Path) -> None:
        """A file was moved or written under root (an archived original)."""
        day = self._day_of(path)
        size = _size(path)
        if day is None:
            self._other += size
        else:
            self._media[day] = self._media.get(day, 0) + size

    @property
    def cap_bytes(self) -> int:
        return int(self.settings.cap_mb * MB)

    def media_bytes(self) -> int:
        """Originals kept in the archive, duplicates and quarantine areas."""
        return sum(self._media.values())

    def used_bytes(self) -> int:
        """Everything WildWatch keeps under root."""
        outbox = sum(_size(p) for p in self._outbox_files)
        return self.media_bytes() + self._other + outbox + self._evidence_bytes()

    def make_room(self) -> int:
        """Delete the oldest days of originals while above the prune mark; returns bytes freed."""
        mark = self.settings.low_at * self.cap_bytes
        freed = 0
        used = self.used_bytes()
        # oldest day first, across areas and cameras (the folder name is the day)
        for day in sorted(self._media, key=lambda p: (p.name, str(p))):
            if used - freed <= mark:
                break
            size = self._media.pop(day)
            shutil.rmtree(day, ignore_errors=True)
            freed += size
            self.pruned_days += 1
            log.info(
                "storage: deleted archived originals of %s (%.1f MB) to stay under the %.0f MB cap",
                day.relative_to(self.root),
                size / MB,
                self.settings.cap_mb,
            )
        return freed

    def admit(self) -> None:
        """Raise CapReached when one more file would go beyond the cap."""
        used = self.used_bytes()
        if used >= self.cap_bytes:
            raise CapReached(used / MB, self.settings.cap_mb)

    def low(self) -> tuple[str, str] | None:
        """Why storage is low (Chinese, English), or None. Pruned originals do not count: only
        what cannot be pruned, or a partition filled by anyone."""
        kept = self.used_bytes() - self.media_bytes()
        mark = self.settings.low_at * self.cap_bytes
        if kept >= mark:
            return (
                f"不可清理的数据（事件、证据图片）已达{kept / MB:.0f}MB，"
                f"接近上限{self.settings.cap_mb:.0f}MB",
                f"data that cannot be pruned (events, evidence) uses {kept / MB:.0f} MB of the "
                f"{self.settings.cap_mb:.0f} MB cap",
            )
        try:
            free = shutil.disk_usage(self.root).free
        except OSError:
            return None
        if free < self.settings.low_free_mb * MB:
            return (
                f"数据分区仅剩{free / MB:.0f}MB可用空间（低于{self.settings.low_free_mb:.0f}MB）",
                f"the data partition has only {free / MB:.0f} MB free "
                f"(below {self.settings.low_free_mb:.0f} MB)",
            )
        return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
