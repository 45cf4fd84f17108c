"""One road from pixels to events: the same burst folder through `wildwatch edge run` (a real
node publishing to a real mosquitto) and through `wildwatch edge scan` gives the same events."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from broker.client import BrokerAddress, Message, MqttLink
from broker.topics import TopicKind, subscription
from tests.factories import SHANGHAI, stamp_copy
from tests.helpers import MosquittoServer, wait_for

WILDWATCH = [sys.executable, "-m", "wildwatch"]
DAY = datetime(2026, 11, 21, tzinfo=SHANGHAI)
# (picture, capture time): four bursts as a camera trap writes them, one of them at night. The
# first mixes three bird pictures so that the species smoothed over the burst differs from the
# frames' own calls: a road that does not smooth bursts names them differently.
BURSTS: list[tuple[str, datetime]] = [
    ("bird_coral_bird.jpg", DAY.replace(hour=9)),
    ("ct_ena24_49.jpg", DAY.replace(hour=9, second=4)),
    ("ct_ena24_7951.jpg", DAY.replace(hour=9, second=8)),
    ("ct_ecoassist_car_dog.jpg", DAY.replace(hour=9, minute=10)),
    ("ct_ecoassist_car_dog.jpg", DAY.replace(hour=9, minute=10, second=5)),
    ("ct_ecoassist_vehicle.jpg", DAY.replace(hour=22, minute=30)),
    ("ct_ecoassist_vehicle.jpg", DAY.replace(hour=22, minute=30, second=3)),
    ("ct_md_channelislands_fox_night.jpg", DAY.replace(hour=23)),
]


def _identity(event: dict[str, Any]) -> str:
    """What an event says, without what differs by construction (ids, numbering, creation
    time, the node's evidence uploads)."""
    kept = {
        k: v
        for k, v in event.items()
        if k not in ("event_id", "seq", "created_at", "evidence", "node")
    }
    return json.dumps(kept, sort_keys=True, ensure_ascii=False)


@pytest.fixture()
def burst_folder(images_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "card"
    folder.mkdir()
    for i, (name, at) in enumerate(BURSTS):
        stamp_copy(images_dir / name, folder / f"IMG_{i:04d}.JPG", at)
    return folder


def _node_yaml(path: Path, data_dir: Path, drop: Path, models_dir: Path, port: int) -> Path:
    path.write_text(
        "site: changxing\nnode: road\n"
        f"model_store: {models_dir}\ndata_dir: {data_dir}\n"
        f"mqtt: {{host: 127.0.0.1, port: {port}}}\n"
        f"cameras: [{{id: cam1, drop_folder: {drop}}}]\n"
        "poll_s: 0.2\nsettle_s: 0.2\n"
        # the test birds are not Zhejiang species: let the classifier name them
        "classifier: {restrict_to_catalogue: false}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.slow
def test_edge_run_and_edge_scan_decide_the_same_events(
    burst_folder: Path, models_dir: Path, tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    env = dict(os.environ, WILDWATCH_LOG_LEVEL="WARNING")
    # edge scan, with the same node configuration (its own, empty rule state)
    (tmp_path / "scan-data").mkdir()
    scan_cfg = _node_yaml(
        tmp_path / "scan.yaml", tmp_path / "scan-data", tmp_path / "unused", models_dir, 1
    )
    events_out = tmp_path / "scan-events.jsonl"
    scan = subprocess.run(
        [
            *WILDWATCH,
            *("edge", "scan", str(burst_folder), "--config", str(scan_cfg), "--camera", "cam1"),
            *("--events-out", str(events_out)),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert scan.returncode == 0, scan.stderr
    scanned = [json.loads(line) for line in events_out.read_text(encoding="utf-8").splitlines()]
    assert {e.get("rule") for e in scanned} >= {"free_roaming_dog", "night_intrusion"}

    # edge run: the node service, its drop folder fed the same files as a card import does
    received: list[Message] = []
    got = threading.Lock()

    def keep(message: Message) -> None:
        with got:
            received.append(message)

    central = MqttLink("road-central", BrokerAddress(port=mosquitto.port))
    central.subscribe(subscription(TopicKind.EVENT, node="road"), keep)
    central.start()
    drop = tmp_path / "drop"
    drop.mkdir()
    run_cfg = _node_yaml(
        tmp_path / "run.yaml", tmp_path / "run-data", drop, models_dir, mosquitto.port
    )
    node = subprocess.Popen(
        [*WILDWATCH, "edge", "run", "--config", str(run_cfg)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert central.wait_subscribed(10)
        staged = tmp_path / "staged"
        shutil.copytree(burst_folder, staged)
        for path in sorted(staged.iterdir()):
            path.rename(drop / path.name)
        assert wait_for(lambda: len(received) >= len(scanned) or node.poll() is not None, 240)
        assert node.poll() is None, "edge run exited"
        assert wait_for(lambda: not any(drop.iterdir()), 30)  # every file decided and archived
    finally:
        node.terminate()
        _, stderr = node.communicate(timeout=30)
        central.stop()
    assert node.returncode == 0, stderr[-3000:]
    published = [json.loads(m.payload) for m in received]
    assert sorted(e["seq"] for e in published) == list(range(1, len(published) + 1))
    assert Counter(map(_identity, published)) == Counter(map(_identity, scanned))
