"""The console's 训练数据集 download: the events page links it, and each person gets the reviewed
frames of their own sites only."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import EventPayload, EvidenceRef
from central import crud, datasets
from central.config import CentralConfig
from central.db.models import REVIEW_CONFIRMED, REVIEW_DISMISSED
from tests.central.conftest import make_event
from tests.central.web.conftest import NODE_TOKENS, Seeded, upload

BOX = {
    "x": 0.3,
    "y": 0.3,
    "w": 0.2,
    "h": 0.25,
    "category": "dog",
    "label": "dog",
    "confidence": 0.9,
}

Login = Callable[[str], tuple[TestClient, str]]


def _images(client: TestClient, url: str) -> dict[str, dict[str, object]]:
    r = client.get(url)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        coco = json.loads(zf.read(datasets.COCO_NAME))
        names = set(zf.namelist())
    assert {im["file_name"] for im in coco["images"]} <= names, "every frame is in the zip"
    return {im["id"]: im for im in coco["images"]}


def _framed(
    client: TestClient,
    session_factory: sessionmaker[Session],
    jpeg: bytes,
    **fields: object,
) -> EventPayload:
    """An event whose node uploaded its frame and the one crop of its one box, as nodes do
    (a frame without its crops may hold other events' animals: the export leaves it out)."""
    image = Image.open(io.BytesIO(jpeg))
    w, h = image.size
    out = io.BytesIO()
    image.crop((int(0.27 * w), int(0.26 * h), int(0.53 * w), int(0.59 * h))).save(out, "JPEG")
    files = {"frame.jpg": jpeg, "frame_crop0.jpg": out.getvalue()}
    refs = [
        EvidenceRef(name=n, sha256=hashlib.sha256(b).hexdigest(), size=len(b))
        for n, b in files.items()
    ]
    event = make_event(boxes=[BOX], category="dog", evidence=refs, **fields)
    with session_factory.begin() as session:
        crud.insert_event(session=session, payload=event, received_at=datetime.now(UTC))
    for index, body in enumerate(files.values()):
        upload(client, event, body, NODE_TOKENS[event.node], index)
    return event


def test_download_of_reviewed_frames_by_site(
    login: Login,
    app_client: TestClient,
    evidence_jpeg: bytes,
    session_factory: sessionmaker[Session],
    console_config: CentralConfig,
) -> None:
    now = datetime.now(UTC)
    dog = {"kind": "anomaly", "rule": "free_roaming_dog", "severity": "warning"}
    seeded = Seeded(
        cx_anomaly=_framed(
            app_client, session_factory, evidence_jpeg, captured_at=now - timedelta(hours=2), **dog
        ),
        cx_observation=_framed(
            app_client, session_factory, evidence_jpeg, seq=2, captured_at=now - timedelta(hours=1)
        ),
        xz_anomaly=_framed(
            app_client,
            session_factory,
            evidence_jpeg,
            site="xiazhuhu",
            node="xz-01",
            camera="lake-east",
            captured_at=now - timedelta(hours=3),
            **dog,
        ),
    )
    with session_factory() as session:
        for event, decision, reason in (
            (seeded.cx_anomaly, REVIEW_CONFIRMED, None),
            (seeded.xz_anomaly, REVIEW_DISMISSED, "background"),
        ):
            crud.review_event(
                session=session,
                event_id=str(event.event_id),
                decision=decision,
                reviewer="zhang",
                note="",
                at=datetime.now(UTC),
                reason=reason,
            )
        session.commit()
    wang, _ = login("wang")  # changxing staff
    page = wang.get("/events")
    assert "/datasets/coco.zip?from=&amp;to=&amp;site=" in page.text
    assert "训练数据集 COCO Camera Traps" in page.text
    # without dates: the last 30 days; the unreviewed observation stays out
    assert set(_images(wang, "/datasets/coco.zip")) == {str(seeded.cx_anomaly.event_id)}
    assert _images(wang, "/datasets/coco.zip?site=xiazhuhu") == {}, "not wang's site"
    sheng, _ = login("sheng")  # the bureau sees every site
    both = _images(sheng, "/datasets/coco.zip?from=2020-01-01&to=2020-01-31")
    assert both == {}, "another month"
    everyone = _images(sheng, "/datasets/coco.zip")
    assert set(everyone) == {str(seeded.cx_anomaly.event_id), str(seeded.xz_anomaly.event_id)}
    assert everyone[str(seeded.xz_anomaly.event_id)]["wildwatch_review"] == "dismissed_background"
    assert sheng.get("/datasets/coco.zip?from=2020-01-01&to=2026-01-01").status_code == 422
    assert list((console_config.data_dir / "exports").iterdir()) == []
