"""Ingest: capture times, ordering, unusable files, drop-folder stability."""

from __future__ import annotations

import logging
import os
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from edge.ingest import MediaError, load_image
from edge.ingest.capture_time import capture_time
from edge.ingest.folder import DropFolder, media_item, scan_folder
from tests.helpers import FakeClock

TZ = ZoneInfo("Asia/Shanghai")
EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 0x9003
OFFSET_TIME = 0x9010
OFFSET_TIME_ORIGINAL = 0x9011


def test_exif_time_read_in_camera_zone(images_dir: Path) -> None:
    fox = images_dir / "ct_md_channelislands_fox_night.jpg"  # a 2014 frame: an older archive
    when, source = capture_time(fox, TZ, earliest=date(2010, 1, 1))
    assert source == "exif"
    assert when == datetime(2014, 11, 23, 20, 26, 22, tzinfo=TZ)


def _stamped(images_dir: Path, dest: Path, tags: dict[int, str]) -> Path:
    """A real camera-trap frame saved with the given Exif-IFD tags (and its own mtime)."""
    with Image.open(images_dir / "ct_ecoassist_car_dog.jpg") as src:
        exif = Image.Exif()
        sub = exif.get_ifd(EXIF_IFD)
        for tag, value in tags.items():
            sub[tag] = value
        src.save(dest, exif=exif)
    os.utime(dest, (1_700_000_000, 1_700_000_000))
    return dest


def test_offset_time_original_is_honoured(images_dir: Path, tmp_path: Path) -> None:
    utc_cam = _stamped(
        images_dir,
        tmp_path / "utc.jpg",
        {DATETIME_ORIGINAL: "2024:06:01 03:00:00", OFFSET_TIME_ORIGINAL: "+00:00"},
    )
    when, source = capture_time(utc_cam, TZ)
    assert source == "exif" and when == datetime(2024, 6, 1, 11, 0, tzinfo=TZ)
    # OffsetTime (of DateTime) stands in when only it was written
    only_offset = _stamped(
        images_dir,
        tmp_path / "west.jpg",
        {DATETIME_ORIGINAL: "2024:06:01 03:00:00", OFFSET_TIME: "-05:00"},
    )
    assert capture_time(only_offset, TZ) == (datetime(2024, 6, 1, 16, 0, tzinfo=TZ), "exif")
    blank = _stamped(  # some cameras write the tag empty: the camera zone applies
        images_dir,
        tmp_path / "blank.jpg",
        {DATETIME_ORIGINAL: "2024:06:01 03:00:00", OFFSET_TIME_ORIGINAL: "      "},
    )
    assert capture_time(blank, TZ) == (datetime(2024, 6, 1, 3, 0, tzinfo=TZ), "exif")


def test_reset_camera_clock_gives_way_to_file_time(
    images_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reset = _stamped(images_dir, tmp_path / "reset.jpg", {DATETIME_ORIGINAL: "2000:01:01 00:03:12"})
    with caplog.at_level(logging.WARNING):
        when, source = capture_time(reset, TZ)
    assert source == "file" and when.timestamp() == 1_700_000_000
    assert "before 2015-01-01" in caplog.text and "reset.jpg" in caplog.text
    # the floor is configurable: an archive of old pictures keeps its times
    assert capture_time(reset, TZ, earliest=date(1999, 1, 1))[1] == "exif"
    ahead = datetime.now(TZ) + timedelta(days=3)
    future = _stamped(
        images_dir, tmp_path / "future.jpg", {DATETIME_ORIGINAL: f"{ahead:%Y:%m:%d %H:%M:%S}"}
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        when, source = capture_time(future, TZ)
    assert source == "file" and when.timestamp() == 1_700_000_000
    assert "future" in caplog.text and "future.jpg" in caplog.text


def test_corrupt_exif_falls_back_to_file_time(
    images_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = bytearray((images_dir / "ct_md_channelislands_fox_night.jpg").read_bytes())
    tiff = data.find(b"Exif\x00\x00") + 6
    data[tiff] = 0xB1  # the TIFF byte-order mark damaged: Pillow raises SyntaxError
    bad = tmp_path / "IMG_0001.JPG"
    bad.write_bytes(bytes(data))
    os.utime(bad, (1_700_000_000, 1_700_000_000))
    with caplog.at_level(logging.WARNING):
        item = media_item(bad, "cam1", TZ)
    assert item.time_source == "file" and item.captured_at.timestamp() == 1_700_000_000
    assert "EXIF unreadable" in caplog.text and "IMG_0001.JPG" in caplog.text
    assert load_image(bad).shape[2] == 3  # the pixels are fine: the picture is still analysed


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
    items = scan_folder(tmp_path, "cam1", TZ, earliest=date(2010, 1, 1))  # an old archive
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
    clock = FakeClock()
    watcher = DropFolder(tmp_path, "cam1", TZ, settle_s=2.0, clock=clock)
    growing = tmp_path / "up.jpg"
    data = (images_dir / "ct_ecoassist_person.jpg").read_bytes()
    growing.write_bytes(data[:1000])
    assert watcher.poll() == []
    clock.advance(3.0)  # longer than settle_s, but...
    growing.write_bytes(data)  # still uploading: size changed
    assert watcher.poll() == []
    assert watcher.poll() == []  # unchanged, but not yet for settle_s
    clock.advance(1.5)
    assert watcher.poll() == []  # still not for settle_s
    clock.advance(0.5)
    ready = watcher.poll()
    assert [i.path.name for i in ready] == ["up.jpg"]


def test_drop_folder_holds_an_undecodable_file_for_the_grace_period(
    images_dir: Path, tmp_path: Path
) -> None:
    clock = FakeClock()
    watcher = DropFolder(tmp_path, "cam1", TZ, settle_s=2.0, quarantine_grace_s=60.0, clock=clock)
    data = (images_dir / "ct_ecoassist_person.jpg").read_bytes()
    stalled, broken = tmp_path / "stalled.jpg", tmp_path / "broken.jpg"
    for path in (stalled, broken):
        path.write_bytes(data[: len(data) // 2])
    assert watcher.poll() == []
    clock.advance(2.0)
    assert sorted(i.path.name for i in watcher.poll()) == ["broken.jpg", "stalled.jpg"]
    # neither decodes: each may be an upload that stalled, so both stay where they are
    assert watcher.hold(stalled, "truncated") and watcher.hold(broken, "truncated")
    clock.advance(50.0)
    assert watcher.poll() == []  # not offered again while the grace period runs
    stalled.write_bytes(data)  # its upload resumed: it settles and is offered again
    assert watcher.poll() == []
    clock.advance(2.0)
    assert [i.path.name for i in watcher.poll()] == ["stalled.jpg"]
    stalled.unlink()  # it decoded and the node took it away
    clock.advance(5.0)
    assert watcher.poll() == []  # broken: unchanged for 59 s, still within the grace period
    clock.advance(1.0)
    assert [i.path.name for i in watcher.poll()] == ["broken.jpg"]
    assert not watcher.hold(broken, "truncated")  # unchanged for the grace period: really broken


def test_drop_folder_reports_progress_for_each_file_it_reads(
    images_dir: Path, tmp_path: Path
) -> None:
    """An SD-card import is read file by file: each file read is progress the watchdog sees."""
    clock = FakeClock()
    watcher = DropFolder(tmp_path, "cam1", TZ, settle_s=1.0, clock=clock)
    for i in range(3):
        shutil.copy(images_dir / "ct_ecoassist_person.jpg", tmp_path / f"IMG_{i}.jpg")
    (tmp_path / "notes.txt").write_text("not a picture", encoding="utf-8")
    steps: list[float] = []
    assert watcher.poll(lambda: steps.append(clock())) == []  # first sight: nothing read yet
    assert steps == []
    clock.advance(1.5)
    assert len(watcher.poll(lambda: steps.append(clock()))) == 3
    assert len(steps) == 3  # once per file read and hashed, not for the text file
