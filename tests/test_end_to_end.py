"""The spine, for real: images in an edge drop folder -> mosquitto -> central database -> SMS,
report; and the one-command demo."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from central.app import CentralService
from central.config import CentralConfig
from central.db.models import Event
from edge.app import EdgeNode
from edge.config import NodeConfig, parse_config
from tests.central.staff import auth, staff_accounts
from tests.helpers import MosquittoServer, wait_for
from wildwatch.demo import run_demo

DAYTIME = datetime(2026, 11, 22, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
IMAGES = ["bird_coral_bird.jpg", "ct_ecoassist_car_dog.jpg", "ct_ecoassist_empty_night.jpg"]


def _central(tmp_path: Path, database_url: str, port: int) -> CentralConfig:
    """Central on this test's database and broker, one site, one duty phone."""
    return CentralConfig.model_validate(
        {
            "data_dir": str(tmp_path / "central"),
            "database_url": database_url,
            "mqtt": {
                "host": "127.0.0.1",
                "port": port,
                "client_id": f"central-{uuid.uuid4().hex[:8]}",
            },
            "sites": {"changxing": {"name_zh": "长兴扬子鳄国家级自然保护区"}},
            "alerts": {"duty_phones": ["13900000000"]},
            "staff": staff_accounts(),
        }
    )


def _node(tmp_path: Path, models_dir: Path, port: int, **extra: Any) -> NodeConfig:
    """A node with a unique id at changxing (one camera unless `cameras` is given)."""
    return parse_config(
        {
            "site": "changxing",
            "node": f"n{uuid.uuid4().hex[:8]}",
            "data_dir": str(tmp_path / "edge"),
            "model_store": str(models_dir),
            "mqtt": {"host": "127.0.0.1", "port": port},
            "cameras": [{"id": "cam1"}],
            **extra,
        }
    )


def test_edge_run_to_central_row(
    tmp_path: Path,
    images_dir: Path,
    models_dir: Path,
    mosquitto: MosquittoServer,
    database_url: str,
) -> None:
    central_cfg = _central(tmp_path, database_url, mosquitto.port)
    node_cfg = _node(
        tmp_path,
        models_dir,
        mosquitto.port,
        cameras=[{"id": "cam1", "drop_folder": str(tmp_path / "drop")}],
        poll_s=0.1,
        settle_s=0.1,
        quarantine_grace_s=0.5,  # broken.jpg is complete: no need to wait for a stalled upload
    )
    central = CentralService(central_cfg, serve_http=False)
    central.start()
    node = EdgeNode(node_cfg)
    node.start()
    try:
        staging = tmp_path / "staging"
        staging.mkdir()
        for name in IMAGES:
            shutil.copy(images_dir / name, staging / name)
        shutil.copy(images_dir / IMAGES[0], staging / "copy_of_bird.jpg")  # same bytes
        (staging / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
        for path in staging.iterdir():  # no EXIF: the file time says 10:00 (day), not night
            os.utime(path, (DAYTIME.timestamp(), DAYTIME.timestamp()))
            path.rename(tmp_path / "drop" / path.name)
        assert wait_for(lambda: node.processed + node.quarantined + node.duplicates == 5, 60)
        assert node.processed == 3 and node.duplicates == 1 and node.quarantined == 1
        assert node.publisher is not None
        assert wait_for(node.publisher.drained, 30)
        made = node.outbox.last_seq() if node.outbox else 0
        assert made >= 3  # bird, dog observation, free_roaming_dog anomaly at least
        # counted for this node only: other tests' nodes left retained statuses on the broker
        assert wait_for(lambda: len(_rows(database_url, node_cfg.node)) == made, 30)
    finally:  # central first: a node going offline is itself an alert (camera_health)
        central.stop()
        node.stop()

    rows = _rows(database_url, node_cfg.node)
    assert len(rows) == made and len({r.event_id for r in rows}) == made
    assert sorted(r.seq for r in rows) == list(range(1, made + 1))
    assert {r.rule for r in rows if r.source == "ct_ecoassist_car_dog.jpg"} >= {"free_roaming_dog"}
    sms = [json.loads(x) for x in central_cfg.sms_file.read_text(encoding="utf-8").splitlines()]
    assert len(sms) == 1 and "长兴扬子鳄国家级自然保护区" in sms[0]["text"]
    assert "流浪犬" in sms[0]["text"] and sms[0]["phone"] == "13900000000"
    evidence = sorted(p.name for p in (tmp_path / "edge" / "evidence").rglob("*.jpg"))
    assert any(n.startswith("ct_ecoassist_car_dog_") and "_crop" not in n for n in evidence)
    reason = next((tmp_path / "edge" / "quarantine").rglob("*.reason.txt")).read_text()
    assert "truncated" in reason or "decodable" in reason


def _rows(database_url: str, node: str) -> list[Any]:
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(Event.event_id, Event.seq, Event.rule, Event.source).where(Event.node == node)
        ).all()
    engine.dispose()
    return list(rows)


def test_demo_exits_zero_with_every_event_stored(
    tmp_path: Path,
    images_dir: Path,
    models_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("WILDWATCH_MODELS_DIR", str(models_dir))
    subset = tmp_path / "images"
    subset.mkdir()
    for name in [
        "bird_coral_bird.jpg",
        "ct_ecoassist_car_dog.jpg",
        "ct_ena24_8831.jpg",
        "ct_ecoassist_person.jpg",
    ]:
        shutil.copy(images_dir / name, subset / name)
    assert run_demo(images=subset, workdir=tmp_path / "demo", timeout_s=120) == 0
    out = capsys.readouterr().out
    assert "images: 4" in out and "bird=" in out and "animal=" in out
    assert "SMS sent: 1" in out or "SMS sent: 2" in out
    reports = list((tmp_path / "demo" / "central" / "reports").glob("daily_report_*.xlsx"))
    assert len(reports) == 1


def test_reviewer_marks_a_box_as_background_and_the_node_masks_it(
    tmp_path: Path,
    images_dir: Path,
    models_dir: Path,
    mosquitto: MosquittoServer,
    database_url: str,
) -> None:
    from fastapi.testclient import TestClient

    from edge.ingest.folder import media_item

    central_cfg = _central(tmp_path, database_url, mosquitto.port)
    node_cfg = _node(tmp_path, models_dir, mosquitto.port)
    central = CentralService(central_cfg, serve_http=False)
    central.start()
    node = EdgeNode(node_cfg)
    node.start()
    try:
        first = tmp_path / "dog1.jpg"
        shutil.copy(images_dir / "photo_coral_pets.jpg", first)
        os.utime(first, (DAYTIME.timestamp(),) * 2)
        picture = first.read_bytes()  # the node archives the file once processed
        assert node.process(media_item(first, "cam1", node_cfg.tz)) > 0
        assert wait_for(
            lambda: any(r.rule == "free_roaming_dog" for r in _rows(database_url, node_cfg.node)),
            20,
        )
        dog_obs = next(
            r
            for r in _rows(database_url, node_cfg.node)
            if r.rule is None and r.source == "dog1.jpg"
        )
        assert central.app is not None
        url = f"/api/events/{dog_obs.event_id}/background"
        with TestClient(central.app) as client:  # the photo shows two "dogs": both statues
            for index in (0, 1):
                body = {"box_index": index, "note": "雕塑，不是真狗"}
                reply = client.post(url, json=body, headers=auth("王五"))
                assert reply.status_code == 200, reply.text
            bad = client.post(url, json={"box_index": 5}, headers=auth("王五"))
            assert bad.status_code == 422
            assert client.post(url, json={"box_index": 0}).status_code == 401
        assert reply.json()["review_status"] == "dismissed"
        assert reply.json()["reviewer"] == "王五"  # the token's owner
        assert wait_for(lambda: node.commands.backgrounds == 2, 10)
        second = tmp_path / "dog2.jpg"  # the same view a minute later: the statue is still there
        second.write_bytes(picture + b"\x00")
        os.utime(second, (DAYTIME.timestamp() + 60,) * 2)
        node.process(media_item(second, "cam1", node_cfg.tz))
        assert node.outbox is not None
        assert not [
            e
            for e in node.outbox.pending(limit=1000)
            if b'"source":"dog2.jpg"' in e.payload and b'"category":"dog"' in e.payload
        ]
    finally:
        central.stop()
        node.stop()
