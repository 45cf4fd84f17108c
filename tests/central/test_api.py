"""The HTTP API over a real database (FastAPI TestClient)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import WIRE_TIME_MAX, WIRE_TIME_MIN, EventPayload
from central import crud
from central.api.routes.events import MAX_OFFSET, MAX_PAGE
from central.app import create_app
from central.config import CentralConfig
from tests.central.conftest import make_event
from tests.central.staff import auth, with_staff


class ApiClient(TestClient):
    """The test client, with the events the fixture stored (oldest first)."""

    events: list[EventPayload]


@pytest.fixture()
def client(
    central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> Iterator[ApiClient]:
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
    app = create_app(config=with_staff(central_config), session_factory=session_factory)
    with ApiClient(app, headers=auth()) as test_client:
        test_client.events = events
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


def test_detail_and_404(client: ApiClient) -> None:
    event = client.events[1]
    body = client.get(f"/api/events/{event.event_id}").json()
    assert body["rule"] == "free_roaming_dog"
    assert body["captured_at"].startswith("2026-11-21T02:00:00")
    missing = client.get("/api/events/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert "未找到" in missing.json()["detail"] and "not found" in missing.json()["detail"]
    assert client.get("/api/events/not-an-event-id").status_code == 422


def test_a_token_limited_to_one_site_sees_only_that_site(client: ApiClient) -> None:
    qian = auth("钱七")  # xiazhuhu only
    body = client.get("/api/events", headers=qian).json()
    assert body["count"] == 1 and body["data"][0]["site"] == "xiazhuhu"
    assert client.get("/api/events", params={"site": "changxing"}, headers=qian).json() == {
        "data": [],
        "count": 0,
    }
    changxing = client.events[1]
    for path in (f"/api/events/{changxing.event_id}", f"/api/events/{changxing.event_id}/reviews"):
        assert client.get(path, headers=qian).status_code == 404
    r = client.post(
        f"/api/events/{changxing.event_id}/review", json={"decision": "confirmed"}, headers=qian
    )
    assert r.status_code == 404
    assert client.get(f"/api/evidence/{changxing.event_id}/a.jpg", headers=qian).status_code == 404
    assert client.get(f"/api/events/{client.events[2].event_id}", headers=qian).status_code == 200


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert "野生动物" in client.get("/openapi.json").json()["info"]["title"]


def _refused(response: httpx.Response) -> str:
    """The message of a 422 on one query parameter."""
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    return str(error["msg"])


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"until": "9999-12-31T23:59:59-14:00"}, "1970-01-01"),  # was a 500 (overflow to UTC)
        ({"since": "0001-01-01T00:00:00+08:00"}, "2100-01-01"),  # was a 500
        ({"since": "1969-12-31T23:59:59Z"}, "时间须在"),
        ({"until": "2100-01-01T00:00:01Z"}, "时间须在"),
        ({"since": "-1"}, "时间须在"),  # a number is read as seconds from 1970 UTC
        ({"since": "2026-11-21T01:00:00"}, "时区"),
        ({"offset": str(10**20)}, "since/until"),  # was a 500 (beyond 64-bit OFFSET)
        ({"offset": str(MAX_OFFSET + 1)}, "since/until"),
        ({"offset": "-1"}, "greater than or equal"),
        ({"limit": str(MAX_PAGE + 1)}, "less than or equal"),
        ({"category": "dragon"}, "bird"),
        ({"kind": "rumour"}, "anomaly"),
        ({"severity": "panic"}, "critical"),
        ({"site": "Bad Site" * 100}, "pattern"),
        ({"rule": "x" * 500}, "motionless_bird"),  # the enum lists the rules
    ],
)
def test_out_of_range_query_is_422(client: TestClient, params: dict[str, str], says: str) -> None:
    message = _refused(client.get("/api/events", params=params))
    assert says in message
    if not message.isascii():
        assert not message[0].isascii(), "our own messages put Chinese first"


def test_bounds_themselves_are_accepted(client: TestClient) -> None:
    edges = {"since": "1970-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}
    body = client.get("/api/events", params={**edges, "offset": MAX_OFFSET}).json()
    assert body == {"data": [], "count": 3}
    assert client.get("/api/events", params={"until": "2100-01-01T00:00:00Z"}).json()["count"] == 3


def test_every_time_the_wire_takes_can_be_queried(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    """A Raspberry Pi without network time stamps 1970, one just before the wire's end 2099:
    both are stored, so a query by time must be able to name them."""
    first, last = WIRE_TIME_MIN, WIRE_TIME_MAX - timedelta(seconds=1)
    with session_factory.begin() as session:
        for seq, at in ((4, first), (5, last)):
            event = make_event(seq=seq, captured_at=at, created_at=at)
            crud.insert_event(session=session, payload=event, received_at=datetime.now(UTC))
    early = {"since": first.isoformat(), "until": (first + timedelta(days=1)).isoformat()}
    assert [e["seq"] for e in client.get("/api/events", params=early).json()["data"]] == [4]
    late = {"since": last.isoformat(), "until": WIRE_TIME_MAX.isoformat()}
    assert [e["seq"] for e in client.get("/api/events", params=late).json()["data"]] == [5]


def test_a_refused_request_says_why_chinese_first(client: ApiClient) -> None:
    """FastAPI's own 422 carries a summary people read, Chinese first, in `detail`, and keeps
    the errors programs read under `errors`."""
    response = client.get("/api/events", params={"limit": -1})
    assert response.status_code == 422
    body = response.json()
    assert body["detail"].startswith("请求参数有误 / invalid request: limit: "), body
    assert "greater than or equal to 1" in body["detail"]
    (error,) = body["errors"]
    assert (error["loc"], error["type"], error["input"]) == (
        ["query", "limit"],
        "greater_than_equal",
        "-1",
    )
    event = client.events[0]
    body = client.post(f"/api/events/{event.event_id}/review", json={"decision": "maybe"}).json()
    assert body["detail"].startswith("请求参数有误 / invalid request: decision: "), body
    assert [e["loc"] for e in body["errors"]] == [["body", "decision"]]
    naive = client.get("/api/events", params={"since": "2026-11-21T01:00:00", "limit": 0}).json()
    assert naive["detail"].startswith("请求参数有误 / invalid request: since: 时间必须带时区")
    assert "; limit: " in naive["detail"] and len(naive["errors"]) == 2
    documented = client.get("/openapi.json").json()["paths"]["/api/events"]["get"]["responses"]
    assert documented["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ValidationProblem"
    )
