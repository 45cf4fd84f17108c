"""The HTTP API over a real database (FastAPI TestClient)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from central import crud
from central.app import create_app
from central.config import CentralConfig
from tests.central.conftest import make_event


@pytest.fixture()
def client(
    central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> Iterator[TestClient]:
    now = datetime.now(UTC)
    events = [
        make_event(seq=1, captured_at=datetime(2026, 11, 21, 1, tzinfo=UTC)),
        make_event(
            seq=2,
            kind="anomaly",
            category="dog",
            rule="free_roaming_dog",
            severity="alert",
            captured_at=datetime(2026, 11, 21, 2, tzinfo=UTC),
        ),
        make_event(
            seq=3,
            site="xiazhuhu",
            node="xz-01",
            captured_at=datetime(2026, 11, 21, 3, tzinfo=UTC),
        ),
    ]
    with session_factory.begin() as session:
        for event in events:
            crud.insert_event(session=session, payload=event, received_at=now)
    app = create_app(config=central_config, session_factory=session_factory)
    with TestClient(app) as test_client:
        test_client.events = events  # type: ignore[attr-defined]
        yield test_client


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_list_newest_first(client: TestClient) -> None:
    body = client.get("/api/events").json()
    assert body["count"] == 3
    assert [e["seq"] for e in body["data"]] == [3, 2, 1]


def test_filters_and_paging(client: TestClient) -> None:
    assert client.get("/api/events", params={"site": "xiazhuhu"}).json()["count"] == 1
    assert client.get("/api/events", params={"kind": "anomaly"}).json()["data"][0]["seq"] == 2
    assert client.get("/api/events", params={"rule": "free_roaming_dog"}).json()["count"] == 1
    assert client.get("/api/events", params={"severity": "info"}).json()["count"] == 2
    assert client.get("/api/events", params={"category": "dog"}).json()["count"] == 1
    window = {"since": "2026-11-21T09:30:00+08:00", "until": "2026-11-21T11:00:00+08:00"}
    assert [e["seq"] for e in client.get("/api/events", params=window).json()["data"]] == [2]
    page = client.get("/api/events", params={"limit": 1, "offset": 1}).json()
    assert page["count"] == 3 and [e["seq"] for e in page["data"]] == [2]
    assert client.get("/api/events", params={"since": "2026-11-21T01:00:00"}).status_code == 422
    assert client.get("/api/events", params={"limit": 0}).status_code == 422


def test_detail_and_404(client: TestClient) -> None:
    event = client.events[1]  # type: ignore[attr-defined]
    body = client.get(f"/api/events/{event.event_id}").json()
    assert body["rule"] == "free_roaming_dog"
    assert body["captured_at"].startswith("2026-11-21T02:00:00")
    missing = client.get("/api/events/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert "未找到" in missing.json()["detail"] and "not found" in missing.json()["detail"]


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert "野生动物" in client.get("/openapi.json").json()["info"]["title"]
