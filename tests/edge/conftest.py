"""Edge fixtures: a small real file system that can be filled up (a full SD card)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TINY_DISK_KB = 2048  # room for an outbox and a few files, small enough to fill in a moment


@dataclass
class TinyDisk:
    """A tmpfs of TINY_DISK_KB: `fill()` takes its last free byte, `free()` gives it back."""

    root: Path

    @property
    def filler(self) -> Path:
        """The file that holds the space `fill()` took."""
        return self.root / "filler"

    def fill(self) -> None:
        """Write until the kernel says ENOSPC, in ever smaller pieces, so nothing is left."""
        with self.filler.open("ab", buffering=0) as f:
            for size in (1 << 16, 4096, 1):
                try:
                    while f.write(b"\0" * size):
                        pass
                except OSError:
                    continue

    def free(self) -> None:
        """Delete what `fill()` wrote."""
        self.filler.unlink(missing_ok=True)


@pytest.fixture()
def tiny_disk(tmp_path: Path) -> Iterator[TinyDisk]:
    """A real, small tmpfs mounted for the test: real ENOSPC and SQLITE_FULL, no fakes.

    Mounting needs root (or CAP_SYS_ADMIN); elsewhere the test is skipped, not faked.
    """
    root = tmp_path / "tiny"
    root.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TINY_DISK_KB}k", "tmpfs", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for a real full disk: {mount.stderr.strip()}")
    try:
        yield TinyDisk(root)
    finally:
        if subprocess.run(["umount", str(root)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(root)], check=False)  # a file still open
