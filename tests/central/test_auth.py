"""Staff authentication of the API: bearer tokens whose sha256 the config holds."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import CommandPayload
from broker.topics import command_topic
from central import crud
from central.app import create_app
from central.config import CentralConfig, new_staff_token, token_sha256
from tests.central.conftest import make_event
from tests.central.staff import TOKENS, auth, with_staff

BOX = {
    "x": 0.1,
    "y": 0.2,
    "w": 0.3,
    "h": 0.3,
    "category": "bird",
    "label": "bird",
    "confidence": 0.8,
}
# open on purpose: liveness, and the report format (a contract, no station data)
OPEN_PATHS = {"/healthz", "/api/reports/schema.json"}


class Sender:
    """Records the commands the API hands to the broker link."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, payload: bytes) -> bool:
        self.sent.append((topic, payload))
        return True


@pytest.fixture()
def sender() -> Sender:
    return Sender()


@pytest.fixture()
def client(
    central_config: CentralConfig, session_factory: sessionmaker[Session], sender: Sender
) -> Iterator[TestClient]:
    app = create_app(
        config=with_staff(central_config), session_factory=session_factory, send_command=sender
    )
    with TestClient(app) as test_client:
        yield test_client


def _store(session_factory: sessionmaker[Session]) -> str:
    event = make_event(
        kind="anomaly", rule="free_roaming_dog", category="dog", severity="alert", boxes=[BOX]
    )
    with session_factory.begin() as session:
        crud.insert_event(session=session, payload=event, received_at=datetime.now(UTC))
    return str(event.event_id)


def test_every_api_route_refuses_a_request_without_token(client: TestClient) -> None:
    """Walks the published routes, so a route added later without auth fails here."""
    checked = 0
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        if path in OPEN_PATHS:
            continue
        url = path.format(
            event_id=uuid.uuid4(),
            name="a.jpg",
            case_id=1,
            patrol_id=1,
            version="2026.12.03-1",
            file="release.json",
        )
        for method in operations:
            response = client.request(method, url, json={"decision": "dismissed"})
            assert response.status_code == 401, f"{method} {path}: {response.status_code}"
            assert response.headers["WWW-Authenticate"] == "Bearer"
            checked += 1
    # events: list, detail, reviews, review, background; evidence: status, upload, image;
    # cases: list, open, read, update, photos; patrols: list, record, photos; releases: latest,
    # a file (node tokens); datasets: the COCO Camera Traps zip
    assert checked == 19
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer",
        "Bearer ",
        "Basic d2FuZ3d1OnNlY3JldA==",
        "Bearer staff-token-wangwu-0123456789abcdeX",  # one character off
        f"Bearer {token_sha256(TOKENS['王五'])}",  # the hash from the config is not the token
        "Bearer token-of-cx-01-0123456789",  # a node's upload token is not a staff token
    ],
)
def test_unknown_tokens_get_a_chinese_first_401(client: TestClient, header: str) -> None:
    response = client.get("/api/events", headers={"Authorization": header})
    assert response.status_code == 401
    detail = response.json()["detail"]
    assert (
        detail.startswith("缺少或无效的工作人员令牌") and "Missing or unknown staff token" in detail
    )


def test_token_checked_before_inputs(client: TestClient) -> None:
    """An anonymous caller learns nothing from validation errors."""
    assert client.get("/api/events", params={"offset": 10**20}).status_code == 401
    assert client.post("/api/events/nope/review", json={"decision": "?"}).status_code == 401


def test_scheme_is_case_insensitive(client: TestClient) -> None:
    token = TOKENS["赵六"]
    assert client.get("/api/events", headers={"Authorization": f"bearer {token}"}).json() == {
        "data": [],
        "count": 0,
    }


def test_background_is_dismissed_in_the_token_holders_name(
    client: TestClient, session_factory: sessionmaker[Session], sender: Sender
) -> None:
    event_id = _store(session_factory)
    url = f"/api/events/{event_id}/background"
    assert client.post(url, json={"box_index": 0}).status_code == 401
    assert sender.sent == []  # nothing reached the node
    refused = client.post(url, json={"box_index": 0, "reviewer": "王五"}, headers=auth())
    assert refused.status_code == 422 and sender.sent == []
    response = client.post(url, json={"box_index": 0, "note": "树桩"}, headers=auth("赵六"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["review_status"], body["reviewer"]) == ("dismissed", "赵六")
    assert "树桩" in body["review_note"]
    ((topic, payload),) = sender.sent
    command = CommandPayload.model_validate_json(payload)
    assert topic == command_topic("changxing", "cx-01")
    assert command.box is not None and command.box.x == pytest.approx(0.1)


def test_new_staff_token_round_trip(
    central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> None:
    token, digest = new_staff_token()
    assert len(token) >= 40 and digest == token_sha256(token) and token not in digest
    data = central_config.model_dump(mode="json")
    data["staff"] = [{"name": "站长", "token_sha256": digest}]
    config = CentralConfig.model_validate(data)
    assert config.staff_for_token(token) is not None
    assert config.staff_for_token(token + "x") is None
    app = create_app(config=config, session_factory=session_factory)
    with TestClient(app) as client:
        assert client.get("/api/events", headers={"Authorization": f"Bearer {token}"}).is_success
        assert client.get("/api/events", headers=auth()).status_code == 401  # not in this config


def test_no_staff_configured_locks_the_api(
    central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> None:
    assert central_config.staff == []
    app = create_app(config=central_config, session_factory=session_factory)
    with TestClient(app) as client:
        assert client.get("/api/events", headers=auth()).status_code == 401
        assert client.get("/healthz").status_code == 200


def test_openapi_declares_the_bearer_scheme(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["StaffToken"]["scheme"].lower() == "bearer"
    assert {"StaffToken": []} in spec["paths"]["/api/events"]["get"]["security"]
