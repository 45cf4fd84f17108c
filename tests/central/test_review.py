"""POST /api/events/{id}/review, and dismissed anomalies leaving the daily report."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from central import crud
from central.app import create_app
from central.config import CentralConfig
from central.reports.daily import build_daily_report
from tests.central.conftest import make_event

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture()
def client(
    central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> Iterator[TestClient]:
    app = create_app(config=central_config, session_factory=session_factory)
    with TestClient(app) as test_client:
        yield test_client


def _store(session_factory: sessionmaker[Session], **fields: object) -> str:
    event = make_event(kind="anomaly", rule="free_roaming_dog", category="dog", **fields)
    with session_factory.begin() as session:
        crud.insert_event(session=session, payload=event, received_at=datetime.now(UTC))
    return str(event.event_id)


def test_review_sets_status(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    event_id = _store(session_factory)
    body = {"decision": "dismissed", "note": "村民家犬，已拴养", "reviewer": "张三"}
    response = client.post(f"/api/events/{event_id}/review", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["review_status"] == "dismissed"
    stored = client.get(f"/api/events/{event_id}").json()
    assert (stored["review_status"], stored["reviewer"], stored["review_note"]) == (
        "dismissed",
        "张三",
        "村民家犬，已拴养",
    )
    assert stored["reviewed_at"] is not None
    body["decision"] = "confirmed"
    assert client.post(f"/api/events/{event_id}/review", json=body).json()["review_status"] == (
        "confirmed"
    )


def test_review_refuses_bad_requests(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    event_id = _store(session_factory)
    ok = {"decision": "confirmed", "note": "", "reviewer": "李四"}
    assert client.post("/api/events/nope/review", json=ok).status_code == 404
    for bad in ({**ok, "decision": "maybe"}, {**ok, "reviewer": ""}, {**ok, "extra": 1}):
        assert client.post(f"/api/events/{event_id}/review", json=bad).status_code == 422


def test_only_confirmed_or_unreviewed_anomalies_count(
    client: TestClient, central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> None:
    at = datetime(2026, 11, 22, 9, tzinfo=SH)
    ids = [_store(session_factory, captured_at=at, seq=i + 1) for i in range(3)]
    review = {"note": "", "reviewer": "王五"}
    client.post(f"/api/events/{ids[0]}/review", json={**review, "decision": "confirmed"})
    client.post(f"/api/events/{ids[1]}/review", json={**review, "decision": "dismissed"})
    with session_factory() as session:
        report = build_daily_report(session=session, config=central_config, day=date(2026, 11, 22))
    cx = next(s for s in report.sites if s.site == "changxing")
    assert sorted(a.event_id for a in cx.anomalies) == sorted([ids[0], ids[2]])
