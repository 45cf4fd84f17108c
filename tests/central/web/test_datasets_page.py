"""The console's 训练数据集 download: the events page links it, and each person gets the reviewed
frames of their own sites only."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from central import crud, datasets
from central.config import CentralConfig
from central.db.models import REVIEW_CONFIRMED, REVIEW_DISMISSED
from tests.central.web.conftest import Seeded

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


def test_download_of_reviewed_frames_by_site(
    login: Login,
    seeded: Seeded,
    session_factory: sessionmaker[Session],
    console_config: CentralConfig,
) -> None:
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
