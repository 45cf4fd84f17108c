"""POST /api/events/{id}/review, its history (GET .../reviews), and dismissed anomalies leaving
the daily report."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from central import crud
from central.config import CentralConfig
from central.reports.daily import build_daily_report
from tests.central.conftest import make_event
from tests.central.staff import auth, staff_client

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture()
def client(
    central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> Iterator[TestClient]:
    with staff_client(central_config, session_factory) as test_client:
        yield test_client


def _store(session_factory: sessionmaker[Session], **fields: object) -> str:
    event = make_event(kind="anomaly", rule="free_roaming_dog", category="dog", **fields)
    with session_factory.begin() as session:
        crud.insert_event(session=session, payload=event, received_at=datetime.now(UTC))
    return str(event.event_id)


def test_review_is_recorded_in_the_token_holders_name(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    event_id = _store(session_factory)
    body = {"decision": "dismissed", "note": "村民家犬，已拴养"}
    response = client.post(f"/api/events/{event_id}/review", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["review_status"] == "dismissed"
    stored = client.get(f"/api/events/{event_id}").json()
    assert (stored["review_status"], stored["reviewer"], stored["review_note"]) == (
        "dismissed",
        "王五",
        "村民家犬，已拴养",
    )
    assert stored["reviewed_at"] is not None
    # Another staff member changes the decision: the event shows the latest, in their name.
    again = client.post(
        f"/api/events/{event_id}/review",
        json={"decision": "confirmed", "note": "复核：非家犬"},
        headers=auth("赵六"),
    ).json()
    assert (again["review_status"], again["reviewer"], again["review_note"]) == (
        "confirmed",
        "赵六",
        "复核：非家犬",
    )


def test_every_decision_is_kept_in_order(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    """Two staff members review the same event in turn: both decisions stay, oldest first, and
    the event shows the latest."""
    event_id = _store(session_factory)
    assert client.get(f"/api/events/{event_id}/reviews").json() == {
        "event_id": event_id,
        "data": [],
        "count": 0,
    }
    first = {"decision": "dismissed", "note": "村民家犬，已拴养"}
    second = {"decision": "confirmed", "note": "复核：非家犬"}
    assert client.post(f"/api/events/{event_id}/review", json=first).status_code == 200
    response = client.post(f"/api/events/{event_id}/review", json=second, headers=auth("赵六"))
    assert response.status_code == 200, response.text

    history = client.get(f"/api/events/{event_id}/reviews")
    assert history.status_code == 200, history.text
    body = history.json()
    assert body["event_id"] == event_id and body["count"] == 2
    assert [(r["reviewer"], r["decision"], r["note"], r["action"]) for r in body["data"]] == [
        ("王五", "dismissed", "村民家犬，已拴养", "review"),
        ("赵六", "confirmed", "复核：非家犬", "review"),
    ]
    first_at, second_at = (datetime.fromisoformat(r["reviewed_at"]) for r in body["data"])
    assert first_at.utcoffset() is not None and first_at <= second_at
    event = client.get(f"/api/events/{event_id}").json()
    assert (event["review_status"], event["reviewer"], event["review_note"]) == (
        "confirmed",
        "赵六",
        "复核：非家犬",
    )
    assert datetime.fromisoformat(event["reviewed_at"]) == second_at


def test_background_is_kept_in_the_history(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    box = {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.3, "category": "dog", "label": "dog"}
    event_id = _store(session_factory, boxes=[{**box, "confidence": 0.8}])
    marked = client.post(f"/api/events/{event_id}/background", json={"note": "树桩"})
    assert marked.status_code == 200, marked.text
    client.post(
        f"/api/events/{event_id}/review", json={"decision": "confirmed"}, headers=auth("赵六")
    )
    history = client.get(f"/api/events/{event_id}/reviews").json()["data"]
    assert [(r["action"], r["decision"], r["reviewer"]) for r in history] == [
        ("background", "dismissed", "王五"),
        ("review", "confirmed", "赵六"),
    ]
    assert "树桩" in history[0]["note"]


def test_history_of_unknown_event_or_without_token_is_refused(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    unknown = client.get("/api/events/00000000-0000-4000-8000-000000000000/reviews")
    assert unknown.status_code == 404
    detail = unknown.json()["detail"]
    assert detail.startswith("未找到该事件") and "Event not found" in detail
    assert client.get("/api/events/nope/reviews").status_code == 422
    event_id = _store(session_factory)
    client.post(f"/api/events/{event_id}/review", json={"decision": "confirmed"})
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer guessed-token-000000000"}):
        refused = client.get(f"/api/events/{event_id}/reviews", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert refused.json()["detail"].startswith("缺少或无效的工作人员令牌")


def test_review_refuses_bad_requests(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    event_id = _store(session_factory)
    ok = {"decision": "confirmed", "note": ""}
    unknown = "00000000-0000-4000-8000-000000000000"
    assert client.post(f"/api/events/{unknown}/review", json=ok).status_code == 404
    assert client.post("/api/events/nope/review", json=ok).status_code == 422
    for bad in (
        {**ok, "decision": "maybe"},
        {**ok, "note": "x" * 1001},
        {**ok, "extra": 1},
        {**ok, "reviewer": "王五"},  # who decided comes from the token, never from the body
    ):
        assert client.post(f"/api/events/{event_id}/review", json=bad).status_code == 422
    assert client.get(f"/api/events/{event_id}").json()["review_status"] == "unreviewed"


def test_unauthenticated_dismissal_leaves_the_report_alone(
    client: TestClient, central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> None:
    """The reviewer's reproduction: an anonymous POST turned the day into a zero report."""
    event_id = _store(session_factory, captured_at=datetime(2026, 11, 22, 9, tzinfo=SH))
    dismiss = {"decision": "dismissed", "note": ""}
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer guessed-token-000000000"}):
        refused = client.post(f"/api/events/{event_id}/review", json=dismiss, headers=headers)
        assert refused.status_code == 401
    with session_factory() as session:
        report = build_daily_report(session=session, config=central_config, day=date(2026, 11, 22))
    cx = next(s for s in report.sites if s.site == "changxing")
    assert [a.event_id for a in cx.anomalies] == [event_id]


def test_only_confirmed_or_unreviewed_anomalies_count(
    client: TestClient, central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> None:
    at = datetime(2026, 11, 22, 9, tzinfo=SH)
    ids = [_store(session_factory, captured_at=at, seq=i + 1) for i in range(3)]
    review = {"note": ""}
    client.post(f"/api/events/{ids[0]}/review", json={**review, "decision": "confirmed"})
    client.post(f"/api/events/{ids[1]}/review", json={**review, "decision": "dismissed"})
    with session_factory() as session:
        report = build_daily_report(session=session, config=central_config, day=date(2026, 11, 22))
    cx = next(s for s in report.sites if s.site == "changxing")
    assert sorted(a.event_id for a in cx.anomalies) == sorted([ids[0], ids[2]])
