"""Evidence uploads over the real API and database: tokens, resume, sha256 check, serving."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import EventPayload, EvidenceRef
from central import crud
from central.app import create_app
from central.config import CentralConfig
from tests.central.conftest import make_event
from tests.central.staff import auth, with_staff

TOKEN_A = "token-of-cx-01-0123456789"
TOKEN_B = "token-of-xz-01-9876543210"
IMAGE = bytes(range(256)) * 200  # 51,200 bytes
SHA = hashlib.sha256(IMAGE).hexdigest()
CHUNK = 16 * 1024


@pytest.fixture()
def config(
    central_config: CentralConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> CentralConfig:
    """The test config with two uploading nodes whose tokens come from the environment."""
    monkeypatch.setenv("WW_TOKEN_CX01", TOKEN_A)
    monkeypatch.setenv("WW_TOKEN_XZ01", TOKEN_B)
    data = central_config.model_dump(mode="json")
    data["evidence"] = {
        "storage_dir": str(tmp_path / "evidence"),
        "uploaders": [
            {"site": "changxing", "node": "cx-01", "token_env": "WW_TOKEN_CX01"},
            {"site": "xiazhuhu", "node": "xz-01", "token_env": "WW_TOKEN_XZ01"},
        ],
    }
    return with_staff(CentralConfig.model_validate(data))


@pytest.fixture()
def events(session_factory: sessionmaker[Session]) -> dict[str, EventPayload]:
    """One changxing event listing the image, one xiazhuhu event listing nothing."""
    made = {
        "cx": make_event(evidence=[EvidenceRef(name="a.jpg", sha256=SHA, size=len(IMAGE))]),
        "xz": make_event(site="xiazhuhu", node="xz-01"),
    }
    with session_factory.begin() as session:
        for event in made.values():
            crud.insert_event(session=session, payload=event, received_at=datetime.now(UTC))
    return made


@pytest.fixture()
def client(config: CentralConfig, session_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(create_app(config=config, session_factory=session_factory)) as test_client:
        yield test_client


def put(
    client: TestClient, url: str, start: int, end: int, *, token: str = TOKEN_A, sha: str = SHA
) -> httpx.Response:
    """PUT IMAGE[start:end] as one chunk."""
    # Typed here: starlette types TestClient against httpx2 (not installed), so mypy sees Any.
    response: httpx.Response = client.put(
        url,
        content=IMAGE[start:end],
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Range": f"bytes {start}-{end - 1}/{len(IMAGE)}",
            "X-Content-SHA256": sha,
        },
    )
    return response


def test_chunked_upload_resumes_and_is_served(
    client: TestClient, events: dict[str, EventPayload], config: CentralConfig
) -> None:
    url = f"/api/evidence/{events['cx'].event_id}/a.jpg"
    node_auth = {"Authorization": f"Bearer {TOKEN_A}"}
    assert client.get(f"{url}/status", headers=node_auth).json() == {
        "received": 0,
        "complete": False,
    }
    r = put(client, url, 0, CHUNK)
    assert r.status_code == 200 and r.json() == {"received": CHUNK, "complete": False}
    assert client.get(f"{url}/status", headers=node_auth).json()["received"] == CHUNK
    assert client.get(url, headers=auth()).status_code == 404  # not complete yet
    gap = put(client, url, 2 * CHUNK, 3 * CHUNK)  # skipping bytes is refused with the offset
    assert gap.status_code == 409 and gap.headers["Upload-Offset"] == str(CHUNK)
    assert put(client, url, CHUNK, 2 * CHUNK).status_code == 200
    r = put(client, url, 2 * CHUNK, len(IMAGE))
    assert r.json() == {"received": len(IMAGE), "complete": True}
    served = client.get(url, headers=auth())
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert hashlib.sha256(served.content).hexdigest() == SHA
    event = client.get(f"/api/events/{events['cx'].event_id}", headers=auth()).json()
    assert [(e["name"], e["sha256"], e["size"]) for e in event["evidence"]] == [
        ("a.jpg", SHA, len(IMAGE))
    ]
    stored = config.evidence_dir / "changxing" / "cx-01" / str(events["cx"].event_id) / "a.jpg"
    assert stored.read_bytes() == IMAGE
    assert put(client, url, 0, len(IMAGE)).json()["complete"] is True


def test_wrong_hash_is_refused_and_discarded(
    client: TestClient, events: dict[str, EventPayload]
) -> None:
    url = f"/api/evidence/{events['xz'].event_id}/b.jpg"
    wrong = hashlib.sha256(b"something else").hexdigest()
    r = put(client, url, 0, len(IMAGE), token=TOKEN_B, sha=wrong)
    assert r.status_code == 422
    assert r.headers["X-Evidence-Error"] == "sha256"
    assert "SHA-256" in r.json()["detail"]
    status = client.get(f"{url}/status", headers={"Authorization": f"Bearer {TOKEN_B}"}).json()
    assert status == {"received": 0, "complete": False}  # the partial is gone: restart from 0
    assert client.get(url, headers=auth()).status_code == 404
    # A file the event does not list (with these bytes) is refused as well.
    listed = f"/api/evidence/{events['cx'].event_id}/a.jpg"
    assert put(client, listed, 0, len(IMAGE), sha=wrong).status_code == 422


def test_tokens(client: TestClient, events: dict[str, EventPayload]) -> None:
    url = f"/api/evidence/{events['xz'].event_id}/b.jpg"
    other = put(client, url, 0, CHUNK, token=TOKEN_A)  # node A's token, node B's event
    assert other.status_code == 403
    assert "changxing/cx-01" in other.json()["detail"]
    assert put(client, url, 0, CHUNK, token="not-a-known-token-at-all").status_code == 401
    assert client.get(f"{url}/status").status_code == 401
    unknown = "/api/evidence/00000000-0000-4000-8000-000000000000/c.jpg"
    assert put(client, unknown, 0, CHUNK).status_code == 404
    assert client.get(f"{url}/../../etc/passwd", headers=auth()).status_code in (404, 422)


def test_images_need_a_staff_token_and_uploads_a_node_token(
    client: TestClient, events: dict[str, EventPayload]
) -> None:
    url = f"/api/evidence/{events['cx'].event_id}/a.jpg"
    assert put(client, url, 0, len(IMAGE)).json()["complete"] is True
    for headers in ({}, {"Authorization": f"Bearer {TOKEN_A}"}, {"Authorization": "Basic x"}):
        refused = client.get(url, headers=headers)  # no token, a node's token, another scheme
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert refused.json()["detail"].startswith("缺少或无效的工作人员令牌")
    assert client.get(url, headers=auth("赵六")).content == IMAGE
    staff_token = auth()["Authorization"].removeprefix("Bearer ")
    assert put(client, url, 0, CHUNK, token=staff_token).status_code == 401
    assert client.get(f"{url}/status", headers=auth()).status_code == 401


def test_oversized_content_range_is_refused(
    client: TestClient, events: dict[str, EventPayload]
) -> None:
    url = f"/api/evidence/{events['cx'].event_id}/a.jpg"
    huge = "9" * 5000  # int() of this raised ValueError (a 500) before the header was bounded
    response = client.put(
        url,
        content=b"x",
        headers={
            "Authorization": f"Bearer {TOKEN_A}",
            "Content-Range": f"bytes 0-0/{huge}",
            "X-Content-SHA256": SHA,
        },
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["header", "content-range"]
