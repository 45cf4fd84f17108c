"""A node's drop-folder watcher keeps going: bad files, a full disk and stalled uploads."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import edge.app
from edge.app import EdgeNode
from edge.ingest import MediaItem
from edge.pipeline import Look
from tests.edge.conftest import TinyDisk
from tests.factories import node_config
from tests.helpers import MosquittoServer, wait_for

DOG = "ct_ecoassist_car_dog.jpg"
StartNode = Callable[..., EdgeNode]


@pytest.fixture()
def start_node(tmp_path: Path, models_dir: Path, mosquitto: MosquittoServer) -> Iterator[StartNode]:
    """start_node(data_dir, cameras=[...], **config) -> a running node polling fast."""
    nodes: list[EdgeNode] = []

    def _start(data_dir: Path, cameras: list[str], **over: Any) -> EdgeNode:
        config = node_config(
            data_dir,
            models_dir,
            mqtt={"port": mosquitto.port},
            cameras=[{"id": c, "drop_folder": str(tmp_path / "drop" / c)} for c in cameras],
            poll_s=0.1,
            settle_s=0.2,
            **over,
        )
        node = EdgeNode(config)
        node.start()
        nodes.append(node)
        return node

    yield _start
    for node in nodes:
        node.stop()


def _watcher_alive(node: EdgeNode) -> bool:
    return any(t.name == "watcher" and t.is_alive() for t in node._threads)


def _messages(caplog: pytest.LogCaptureFixture, fragment: str) -> list[str]:
    return [r.getMessage() for r in list(caplog.records) if fragment in r.getMessage()]


def test_corrupt_exif_takes_the_file_time_and_both_cameras_go_on(
    tmp_path: Path, images_dir: Path, start_node: StartNode
) -> None:
    node = start_node(tmp_path / "edge", ["cam1", "cam2"])
    data = bytearray((images_dir / "ct_md_channelislands_fox_night.jpg").read_bytes())
    data[data.find(b"Exif\x00\x00") + 6] = 0xB1  # Pillow's EXIF parser raises SyntaxError
    (tmp_path / "drop" / "cam1" / "IMG_0001.JPG").write_bytes(bytes(data))
    shutil.copy(images_dir / DOG, tmp_path / "drop" / "cam2" / "IMG_0002.JPG")
    assert wait_for(lambda: node.processed == 2, 60)
    archived = sorted(p.name for p in (tmp_path / "edge" / "archive").rglob("*.JPG"))
    assert archived == ["IMG_0001.JPG", "IMG_0002.JPG"] and node.quarantined == 0
    assert _watcher_alive(node)


def test_full_disk_leaves_files_in_place_until_space_is_freed(
    tmp_path: Path,
    images_dir: Path,
    start_node: StartNode,
    tiny_disk: TinyDisk,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(edge.app, "DISK_FULL_RETRY_S", 0.2)
    caplog.set_level(logging.DEBUG, logger="edge.app")
    node = start_node(tiny_disk.root / "edge", ["cam1"])  # outbox, evidence, archive: all full
    tiny_disk.fill()
    drop = tmp_path / "drop" / "cam1"
    for i in range(3):
        (drop / f"IMG_{i:04d}.JPG").write_bytes((images_dir / DOG).read_bytes() + bytes([i]))
    assert wait_for(lambda: bool(_messages(caplog, "data disk full")), 60)
    assert wait_for(lambda: len(_messages(caplog, "data disk still full")) >= 2, 60)  # retried
    assert node.processed == 0 and node.quarantined == 0 and node.outbox.last_seq() == 0
    assert sorted(p.name for p in drop.iterdir()) == [
        "IMG_0000.JPG",
        "IMG_0001.JPG",
        "IMG_0002.JPG",
    ]
    assert len(_messages(caplog, "data disk full")) == 1  # said clearly, once
    assert _watcher_alive(node)

    tiny_disk.free()  # an operator makes room: the node resumes by itself
    assert wait_for(lambda: node.processed == 3, 60)
    assert not list(drop.iterdir()) and node.quarantined == 0 and node.outbox.last_seq() > 0
    assert not list(tiny_disk.root.rglob("*.tmp"))  # no partial evidence left from the failures
    assert _messages(caplog, "disk space available again")


def test_a_file_that_breaks_processing_stays_and_the_rest_go_on(
    tmp_path: Path, images_dir: Path, start_node: StartNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = start_node(tmp_path / "edge", ["cam1"])
    real = node.pipeline.look

    def look(item: MediaItem, image: Any = None) -> Look:
        # injected fault: a bug hit by one file cannot be produced for real
        if item.path.name == "IMG_0001.JPG":
            raise RuntimeError("bug hit by this one file")
        return real(item, image)

    monkeypatch.setattr(node.pipeline, "look", look)
    drop = tmp_path / "drop" / "cam1"
    for i in range(3):
        (drop / f"IMG_{i:04d}.JPG").write_bytes((images_dir / DOG).read_bytes() + bytes([i]))
    assert wait_for(lambda: node.processed == 2, 60)
    assert [p.name for p in drop.iterdir()] == ["IMG_0001.JPG"]  # kept to try again, not lost
    assert node.quarantined == 0 and _watcher_alive(node)


def test_stalled_upload_is_analysed_once_it_completes(
    tmp_path: Path, images_dir: Path, start_node: StartNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    node = start_node(tmp_path / "edge", ["cam1"])  # default grace: 10 minutes
    data = (images_dir / DOG).read_bytes()
    resume = threading.Event()

    def upload() -> None:  # an FTP server writing a file whose 4G link stalls mid-way
        with (tmp_path / "drop" / "cam1" / "IMG_0042.JPG").open("wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            resume.wait(60)
            f.write(data[len(data) // 2 :])

    writer = threading.Thread(target=upload)
    writer.start()
    try:
        # the node took the half file (unchanged for longer than settle_s) and left it in place
        assert wait_for(lambda: bool(_messages(caplog, "does not decode")), 30)
    finally:
        resume.set()
        writer.join()
    assert wait_for(lambda: node.processed == 1, 60)
    archived = list((tmp_path / "edge" / "archive").rglob("IMG_0042.JPG"))
    assert len(archived) == 1 and archived[0].read_bytes() == data
    assert node.quarantined == 0 and not (tmp_path / "edge" / "quarantine").exists()


def test_file_that_never_completes_is_quarantined_after_the_grace_period(
    tmp_path: Path, images_dir: Path, start_node: StartNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    node = start_node(tmp_path / "edge", ["cam1"], quarantine_grace_s=1.0)
    data = (images_dir / DOG).read_bytes()
    broken = tmp_path / "drop" / "cam1" / "IMG_0043.JPG"
    broken.write_bytes(data[: len(data) // 2])
    os.utime(broken, (1_700_000_000, 1_700_000_000))
    assert wait_for(lambda: node.quarantined == 1, 60)
    assert len(_messages(caplog, "does not decode")) == 1  # logged once, not on every poll
    moved = list((tmp_path / "edge" / "quarantine").rglob("IMG_0043.JPG"))
    assert len(moved) == 1 and not broken.exists()
    reason = moved[0].with_name("IMG_0043.JPG.reason.txt").read_text()
    assert "truncated" in reason and node.processed == 0
