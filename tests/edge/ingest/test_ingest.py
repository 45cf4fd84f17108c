"""Ingest: capture times, ordering, unusable files, drop-folder stability."""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge.ingest import MediaError, load_image
from edge.ingest.capture_time import capture_time
from edge.ingest.folder import DropFolder, scan_folder

TZ = ZoneInfo("Asia/Shanghai")


def test_exif_time_read_in_camera_zone(images_dir: Path) -> None:
    when, source = capture_time(images_dir / "ct_md_channelislands_fox_night.jpg", TZ)
    assert source == "exif"
    assert when == datetime(2014, 11, 23, 20, 26, 22, tzinfo=TZ)


def test_file_time_fallback(images_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "a.jpg"
    shutil.copy(images_dir / "ct_ecoassist_person.jpg", dest)  # no EXIF
    os.utime(dest, (1_700_000_000, 1_700_000_000))
    when, source = capture_time(dest, TZ)
    assert source == "file" and when.timestamp() == 1_700_000_000


def test_scan_orders_by_capture_time(images_dir: Path, tmp_path: Path) -> None:
    for name, stamp in [("c.jpg", 300), ("a.jpg", 200)]:
        shutil.copy(images_dir / "ct_ecoassist_person.jpg", tmp_path / name)
        os.utime(tmp_path / name, (1_700_000_000 + stamp,) * 2)
    shutil.copy(images_dir / "ct_md_channelislands_fox_night.jpg", tmp_path / "z.jpg")  # 2014
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "upload.jpg.part").write_bytes(b"x")
    items = scan_folder(tmp_path, "cam1", TZ)
    assert [i.path.name for i in items] == ["z.jpg", "a.jpg", "c.jpg"]
    assert items[1].sha256 == items[2].sha256  # same content


def test_unusable_files_raise_media_error(images_dir: Path, tmp_path: Path) -> None:
    data = (images_dir / "ct_ecoassist_person.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG not really")
    for name, reason in [
        ("trunc.jpg", "truncated"),
        ("empty.jpg", "empty"),
        ("junk.png", "not a decodable image"),
    ]:
        with pytest.raises(MediaError, match=reason):
            load_image(tmp_path / name)
    assert load_image(images_dir / "ct_ecoassist_person.jpg").shape == (365, 640, 3)


def test_drop_folder_waits_until_file_is_stable(images_dir: Path, tmp_path: Path) -> None:
    watcher = DropFolder(tmp_path, "cam1", TZ, settle_s=0.2)
    growing = tmp_path / "up.jpg"
    data = (images_dir / "ct_ecoassist_person.jpg").read_bytes()
    growing.write_bytes(data[:1000])
    assert watcher.poll() == []
    time.sleep(0.25)
    growing.write_bytes(data)  # still uploading: size changed
    assert watcher.poll() == []
    assert watcher.poll() == []  # unchanged, but not yet for settle_s
    time.sleep(0.25)
    ready = watcher.poll()
    assert [i.path.name for i in ready] == ["up.jpg"]


def test_bursts_split_on_gap_per_camera() -> None:
    from datetime import timedelta

    from edge.ingest import MediaItem
    from edge.ingest.sequences import group_bursts

    t0 = datetime(2026, 11, 22, 6, 0, tzinfo=TZ)

    def item(name: str, cam: str, s: float) -> MediaItem:
        return MediaItem(Path(name), cam, t0 + timedelta(seconds=s), "exif", name)

    seqs = group_bursts(
        [
            item("a", "c1", 0),
            item("b", "c1", 5),
            item("c", "c1", 70),
            item("x", "c2", 3),
            item("d", "c1", 200),
            item("e", "c1", 259),
        ],
        gap_s=60,
    )
    assert [[i.path.name for i in s] for s in seqs] == [["a", "b"], ["x"], ["c"], ["d", "e"]]
