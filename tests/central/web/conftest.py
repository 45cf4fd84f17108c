"""Console fixtures: accounts of every role at two sites, events with real evidence images
uploaded through the real evidence API, and a logged-in TestClient per person."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import EventPayload, EvidenceRef
from central import crud
from central.app import create_app
from central.config import CentralConfig
from tests.central.conftest import make_event
from tests.central.staff import with_staff
from tests.central.web.station import PASSWORD, PEOPLE, add_people

NODE_TOKENS = {"cx-01": "token-of-cx-01-0123456789", "xz-01": "token-of-xz-01-9876543210"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture()
def console_config(
    central_config: CentralConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> CentralConfig:
    monkeypatch.setenv("WW_TOKEN_CX01", NODE_TOKENS["cx-01"])
    monkeypatch.setenv("WW_TOKEN_XZ01", NODE_TOKENS["xz-01"])
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
def people(session_factory: sessionmaker[Session], console_config: CentralConfig) -> list[str]:
    with session_factory.begin() as session:
        add_people(session, PEOPLE, known_sites=console_config.sites)
    return list(PEOPLE)


@dataclass
class Seeded:
    cx_anomaly: EventPayload
    cx_observation: EventPayload
    xz_anomaly: EventPayload


def upload(
    client: TestClient, event: EventPayload, image: bytes, token: str, index: int = 0
) -> None:
    """The node's upload of evidence file `index`, in one chunk, through the real API."""
    ref = event.evidence[index]
    r = client.put(
        f"/api/evidence/{event.event_id}/{ref.name}",
        content=image,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Range": f"bytes 0-{len(image) - 1}/{len(image)}",
            "X-Content-SHA256": ref.sha256,
        },
    )
    assert r.status_code == 200 and r.json()["complete"], r.text


def seed_events(session_factory: sessionmaker[Session], client: TestClient, image: bytes) -> Seeded:
    sha = hashlib.sha256(image).hexdigest()
    ref = [EvidenceRef(name="frame.jpg", sha256=sha, size=len(image))]
    box = {
        "x": 0.3,
        "y": 0.3,
        "w": 0.2,
        "h": 0.25,
        "category": "bird",
        "label": "bird",
        "confidence": 0.91,
    }
    now = datetime.now(UTC)
    made = Seeded(
        cx_anomaly=make_event(
            kind="anomaly",
            rule="motionless_bird",
            severity="alert",
            captured_at=now - timedelta(hours=2),
            species={
                "scientific_name": "Egretta garzetta",
                "chinese_name": "白鹭",
                "confidence": 0.9,
            },
            boxes=[box],
            evidence=ref,
            message_zh="发现1只白鹭在同一位置静止超过10分钟，疑似死亡或患病",
            message_en="1 egret motionless for over 10 minutes",
        ),
        cx_observation=make_event(
            seq=2, captured_at=now - timedelta(hours=1), boxes=[box], evidence=ref
        ),
        xz_anomaly=make_event(
            site="xiazhuhu",
            node="xz-01",
            camera="lake-east",
            kind="anomaly",
            rule="free_roaming_dog",
            category="dog",
            severity="warning",
            captured_at=now - timedelta(hours=3),
            boxes=[{**box, "category": "dog", "label": "dog"}],
            evidence=ref,
        ),
    )
    with session_factory.begin() as session:
        for e in (made.cx_anomaly, made.cx_observation, made.xz_anomaly):
            crud.insert_event(session=session, payload=e, received_at=now)
    upload(client, made.cx_anomaly, image, NODE_TOKENS["cx-01"])
    upload(client, made.cx_observation, image, NODE_TOKENS["cx-01"])
    upload(client, made.xz_anomaly, image, NODE_TOKENS["xz-01"])
    return made


@pytest.fixture()
def evidence_jpeg(images_dir: Path) -> bytes:
    """A real camera-trap still of the shared set (the largest, so thumbnails shrink it)."""
    return max(sorted(images_dir.rglob("*.jpg")), key=lambda p: p.stat().st_size).read_bytes()


@pytest.fixture()
def app_client(
    console_config: CentralConfig, session_factory: sessionmaker[Session], people: list[str]
) -> Iterator[TestClient]:
    with TestClient(create_app(config=console_config, session_factory=session_factory)) as c:
        yield c


@pytest.fixture()
def seeded(
    app_client: TestClient, session_factory: sessionmaker[Session], evidence_jpeg: bytes
) -> Seeded:
    return seed_events(session_factory, app_client, evidence_jpeg)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "page has no CSRF field"
    return found.group(1)


def log_in(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Log `client` in through the login form; returns the session's CSRF token."""
    page = client.get("/login")
    r = client.post(
        "/login",
        data={"name": name, "password": password, "csrf_token": csrf_of(page.text), "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/queue").text)


@pytest.fixture()
def login(
    console_config: CentralConfig, session_factory: sessionmaker[Session], people: list[str]
) -> Iterator[Callable[[str], tuple[TestClient, str]]]:
    """A fresh client per person (own cookie jar), logged in; (client, csrf token)."""
    opened: list[TestClient] = []

    def make(name: str) -> tuple[TestClient, str]:
        client = TestClient(create_app(config=console_config, session_factory=session_factory))
        client.__enter__()
        opened.append(client)
        return client, log_in(client, name)

    yield make
    for client in opened:
        client.__exit__(None, None, None)
