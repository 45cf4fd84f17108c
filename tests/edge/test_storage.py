"""The node stays under its cap on the data partition: old originals go first, oldest day first;
when nothing is left to prune, files wait in the drop folder and storage_low is raised once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from broker.payloads import RuleName
from edge.app import EdgeNode
from edge.config import ConfigError
from edge.ingest.folder import media_item
from edge.storage import MB, CapReached, DataPartition, StorageSettings
from tests.factories import node_config, parse_event
from tests.helpers import MosquittoServer


def _fill(path: Path, mb: float) -> Path:
    """A file of `mb` megabytes (sparse: its size counts, the disk is spared)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.truncate(int(mb * MB))
    return path


def _du(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _partition(root: Path, cap_mb: float, **over: float) -> DataPartition:
    return DataPartition(
        root,
        StorageSettings(cap_mb=cap_mb, **over),
        evidence_dir=root / "evidence",
        evidence_bytes=lambda: _du(root / "evidence") if (root / "evidence").exists() else 0,
        outbox_files=(root / "outbox.db",),
    )


def test_oldest_days_of_originals_go_first_and_only_down_to_the_mark(tmp_path: Path) -> None:
    root = tmp_path / "edge"
    for day, cam in [("2026-11-01", "cam2"), ("2026-11-02", "cam1"), ("2026-11-03", "cam1")]:
        _fill(root / "archive" / cam / day / "IMG.jpg", 30)
    _fill(root / "quarantine" / "cam1" / "2026-10-30" / "bad.jpg", 5)
    _fill(root / "evidence" / "cam1" / "2026-11-01" / "a.jpg", 10)  # never pruned here
    _fill(root / "outbox.db", 2)
    _fill(root / "releases" / "r1" / "model.onnx", 8)
    part = _partition(root, cap_mb=100, low_at=0.9, low_free_mb=0)
    assert part.used_bytes() == 115 * MB and part.media_bytes() == 95 * MB
    freed = part.make_room()  # down to 90 MB: the quarantined day and the oldest archived day
    assert freed == 35 * MB and part.pruned_days == 2
    assert not (root / "quarantine" / "cam1" / "2026-10-30").exists()
    assert not (root / "archive" / "cam2" / "2026-11-01").exists()
    assert (root / "archive" / "cam1" / "2026-11-02" / "IMG.jpg").exists()
    assert part.used_bytes() == _du(root) == 80 * MB
    part.admit()  # room again
    assert part.low() is None  # 18 MB that cannot be pruned is far below the mark


def test_at_the_cap_with_nothing_to_prune_files_are_refused_and_storage_is_low(
    tmp_path: Path,
) -> None:
    root = tmp_path / "edge"
    _fill(root / "evidence" / "cam1" / "2026-11-01" / "a.jpg", 95)
    part = _partition(root, cap_mb=100, low_at=0.9, low_free_mb=0)
    low = part.low()
    assert low is not None and "95MB" in low[0] and "cannot be pruned" in low[1]
    part.admit()  # 95 of 100: one more file may still come
    _fill(root / "evidence" / "cam1" / "2026-11-01" / "b.jpg", 5)
    with pytest.raises(CapReached) as refused:
        part.admit()
    assert refused.value.errno == 28  # ENOSPC: the node's disk-full path takes it


def test_a_nearly_full_partition_is_low_whoever_filled_it(tmp_path: Path) -> None:
    free_mb = shutil.disk_usage(tmp_path).free / MB
    part = _partition(tmp_path, cap_mb=100, low_free_mb=free_mb * 2)
    low = part.low()
    assert low is not None and "数据分区仅剩" in low[0] and "free" in low[1]
    assert _partition(tmp_path, cap_mb=100, low_free_mb=0).low() is None


def test_evidence_limit_must_fit_under_the_cap(tmp_path: Path, models_dir: Path) -> None:
    with pytest.raises(ConfigError, match="evidence_limit_mb"):
        node_config(tmp_path, models_dir, evidence_limit_mb=500, storage={"cap_mb": 500})


def test_node_prunes_old_originals_and_waits_at_the_cap(
    tmp_path: Path, images_dir: Path, models_dir: Path, mosquitto: MosquittoServer
) -> None:
    data = tmp_path / "edge"
    _fill(data / "archive" / "cam1" / "2020-01-01" / "old.jpg", 60)  # an old day of originals
    config = node_config(
        data,
        models_dir,
        mqtt={"port": mosquitto.port},
        evidence_limit_mb=20,
        storage={"cap_mb": 64, "low_at": 0.9, "low_free_mb": 0},
    )
    node = EdgeNode(config)
    node.start()
    try:
        node.publisher.stop()  # keep events in the outbox to read them back
        photo = tmp_path / "dog.jpg"
        shutil.copy(images_dir / "ct_ecoassist_car_dog.jpg", photo)
        node.process(media_item(photo, "cam1", config.tz))
        assert not (data / "archive" / "cam1" / "2020-01-01").exists()  # pruned to make room
        assert node.processed == 1 and _du(data) <= config.storage.cap_mb * MB
        assert node.storage_low is None

        # something that cannot be pruned (a release) takes the partition to the cap
        _fill(data / "releases" / "big" / "model.onnx", 64)
        node.storage.scan()
        second = tmp_path / "dog2.jpg"
        shutil.copy(images_dir / "ct_ecoassist_car_dog.jpg", second)
        with open(second, "ab") as f:
            f.write(b"\0")  # other content, same picture
        with pytest.raises(CapReached):
            node.process(media_item(second, "cam1", config.tz))
        assert second.exists()  # it waits in place; nothing is lost
        rules = [parse_event(e.topic, e.payload).rule for e in node.outbox.pending(limit=500)]
        assert rules.count(RuleName.STORAGE_LOW) == 1
        with pytest.raises(CapReached):  # still at the cap: refused again, not warned again
            node.process(media_item(second, "cam1", config.tz))
        rules = [parse_event(e.topic, e.payload).rule for e in node.outbox.pending(limit=500)]
        assert rules.count(RuleName.STORAGE_LOW) == 1

        os.unlink(data / "releases" / "big" / "model.onnx")  # an operator frees space
        node.storage.scan()
        node.process(media_item(second, "cam1", config.tz))
        assert node.processed == 2 and node.storage_low is None
    finally:
        node.stop()
