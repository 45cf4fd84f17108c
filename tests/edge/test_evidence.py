"""Evidence: annotated frame and crops written, and the folder kept under its limit."""

from __future__ import annotations

import errno
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import cv2
import numpy as np
import pytest

from broker.payloads import Category, Severity
from edge.detect import Detection
from edge.evidence import EvidenceStore, crop, draw
from edge.ingest import load_image
from tests.edge.conftest import TinyDisk

BIRD = Detection(100, 50, 300, 250, 0.9, 14, "bird", Category.BIRD)


def test_draw_and_crop(images_dir: Path) -> None:
    image = load_image(images_dir / "bird_coral_bird.jpg")
    drawn = draw(image, [BIRD])
    assert drawn.shape == image.shape and not np.array_equal(drawn, image)
    assert np.array_equal(drawn[0:40, 400:], image[0:40, 400:])  # outside the box: untouched
    c = crop(image, BIRD, margin=0.0)
    assert c.shape == (200, 200, 3)
    outside = Detection(5000, 5000, 6000, 6000, 0.5, 14, "bird", Category.BIRD)
    assert crop(image, outside).size > 0


def test_store_writes_and_prunes_oldest(images_dir: Path, tmp_path: Path) -> None:
    image = load_image(images_dir / "bird_coral_bird.jpg")
    store = EvidenceStore(tmp_path / "evidence", limit_mb=0.15)
    first = store.save(image=image, detections=[BIRD], camera="cam1", day="2026-11-22", stem="a")
    assert cv2.imread(str(first.frame)) is not None and len(first.crops) == 1
    os.utime(first.frame, (1, 1))
    os.utime(first.crops[0], (1, 1))
    for stem in "bcdef":
        store.save(image=image, detections=[BIRD], camera="cam1", day="2026-11-22", stem=stem)
    assert store.usage_bytes() <= 0.15e6
    assert not first.frame.exists()  # the oldest went first
    assert (tmp_path / "evidence" / "cam1" / "2026-11-22" / "f.jpg").exists()


def test_failed_write_leaves_no_temporary_file(images_dir: Path, tmp_path: Path) -> None:
    image = load_image(images_dir / "bird_coral_bird.jpg")
    store = EvidenceStore(tmp_path / "evidence", limit_mb=10)
    folder = tmp_path / "evidence" / "cam1" / "2026-11-22"
    (folder / "a.jpg").mkdir(parents=True)  # a real failure: the frame's name is taken by a folder
    (folder / "a.jpg" / "keep").write_bytes(b"x")
    with pytest.raises(OSError):
        store.save(image=image, detections=[BIRD], camera="cam1", day="2026-11-22", stem="a")
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg"]  # no a.tmp left behind


def test_full_disk_leaves_no_partial_file(images_dir: Path, tiny_disk: TinyDisk) -> None:
    image = load_image(images_dir / "bird_coral_bird.jpg")
    store = EvidenceStore(tiny_disk.root / "evidence", limit_mb=10)
    tiny_disk.fill()
    with pytest.raises(OSError) as failed:
        store.save(image=image, detections=[BIRD], camera="cam1", day="2026-11-22", stem="a")
    assert failed.value.errno == errno.ENOSPC
    assert not list((tiny_disk.root / "evidence").rglob("*.tmp"))
    store.close()


def test_a_save_that_jumps_past_the_limit_still_warns(images_dir: Path, tmp_path: Path) -> None:
    image = load_image(images_dir / "bird_coral_bird.jpg")
    probe = EvidenceStore(tmp_path / "probe", limit_mb=100)
    probe.save(image=image, detections=[BIRD], camera="c", day="2026-11-22", stem="a")
    one_save = probe.usage_bytes()
    # Two saves fill 70 % of the limit (no warning); the third goes straight past 100 %.
    store = EvidenceStore(tmp_path / "evidence", limit_mb=one_save * 2 / 0.7 / 1e6)
    for stem in "ab":
        store.save(image=image, detections=[BIRD], camera="c", day="2026-11-22", stem=stem)
    assert not store.near_limit
    store.save(image=image, detections=[BIRD], camera="c", day="2026-11-22", stem="c")
    assert store.usage_bytes() <= store.limit_bytes  # pruned back under the limit ...
    assert store.near_limit  # ... and the operator is told, not only the log


def test_a_new_index_has_small_pages_and_full_sync_an_old_one_keeps_its_pages(
    tmp_path: Path,
) -> None:
    store = EvidenceStore(tmp_path / "new")
    (synchronous,) = store._index.execute("PRAGMA synchronous").fetchone()
    assert synchronous == 2  # FULL: the alert marks that keep files from pruning survive a cut
    store.close()
    with closing(sqlite3.connect(tmp_path / "new" / "index.db")) as db:
        assert db.execute("PRAGMA page_size").fetchone()[0] == 1024
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    (tmp_path / "old").mkdir()
    with closing(sqlite3.connect(tmp_path / "old" / "index.db")) as db:  # as made until now
        db.execute("PRAGMA page_size=4096")
        db.execute("PRAGMA journal_mode=WAL")
    old = EvidenceStore(tmp_path / "old")
    saved = old.save(
        image=np.zeros((64, 64, 3), dtype=np.uint8),
        detections=[Detection(8, 8, 40, 40, 0.9, 14, "bird", Category.BIRD)],
        camera="cam1",
        day="2026-11-22",
        stem="a",
        severity=Severity.ALERT,
    )
    old.close()
    with closing(sqlite3.connect(tmp_path / "old" / "index.db")) as db:
        assert db.execute("PRAGMA page_size").fetchone()[0] == 4096
        rows = db.execute("SELECT path, severity FROM files ORDER BY path").fetchall()
    assert rows == [(f.path.relative_to(tmp_path / "old").as_posix(), "alert") for f in saved.saved]


def test_a_frame_and_its_crops_are_indexed_in_one_commit(images_dir: Path, tmp_path: Path) -> None:
    """One WAL commit per save, not one per file: fewer bytes on the SD card or SSD."""
    image = load_image(images_dir / "ct_ecoassist_car_dog.jpg")
    boxes = [
        Detection(10 + 20 * i, 10, 60 + 20 * i, 60, 0.9, 16, "dog", Category.ANIMAL)
        for i in range(6)
    ]
    store = EvidenceStore(tmp_path / "ev")
    wal = tmp_path / "ev" / "index.db-wal"
    with closing(sqlite3.connect(tmp_path / "ev" / "index.db")) as other:
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert wal.stat().st_size == 0
    store.save(image=image, detections=boxes, camera="cam1", day="2026-11-01", stem="IMG")
    with closing(sqlite3.connect(tmp_path / "ev" / "index.db")) as other:
        (page,) = other.execute("PRAGMA page_size").fetchone()
        (rows,) = other.execute("SELECT count(*) FROM files").fetchone()
    frames = (wal.stat().st_size - 32) // (24 + page)  # WAL header, then frame header + page
    store.close()
    assert rows == 7  # the frame and six crops
    assert frames <= 3, frames  # one commit: the table and its key index, not seven of each
