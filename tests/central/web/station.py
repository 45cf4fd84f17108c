"""A live station for browser tests and screenshots: central (CentralService: HTTP on a real
port, MQTT ingest from a real mosquitto), console accounts, two nodes that send heartbeats and
events over MQTT and upload evidence images over HTTP as the edge does."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from broker.client import BrokerAddress, MqttLink
from broker.payloads import EventPayload, EvidenceRef, HeartbeatPayload, NodeState, StatusPayload
from broker.topics import event_topic, heartbeat_topic, status_topic
from broker.validate import encode
from central import accounts
from central.app import CentralService
from central.config import CentralConfig
from tests.helpers import free_port, wait_for

PASSWORD = "correct horse battery"
PEOPLE: dict[str, tuple[accounts.Role, list[str], str]] = {
    "wang": (accounts.Role.STAFF, ["changxing"], "王伟"),
    "li": (accounts.Role.STAFF, ["xiazhuhu"], "李娜"),
    "zhang": (accounts.Role.HEAD, ["changxing"], "张站长"),
    "sheng": (accounts.Role.BUREAU, [], "省林业局"),
}
SITES = {
    "changxing": {"name_zh": "长兴扬子鳄国家级自然保护区", "name_en": "Changxing Reserve"},
    "xiazhuhu": {"name_zh": "德清下渚湖湿地", "name_en": "Xiazhu Lake Wetland"},
}
NODES = {"cx-01": "changxing", "xz-01": "xiazhuhu"}
TOKENS = {"cx-01": "upload-token-cx-01-0123456789", "xz-01": "upload-token-xz-01-9876543210"}
EGRET = {"scientific_name": "Egretta garzetta", "chinese_name": "白鹭", "confidence": 0.88}
HERON = {"scientific_name": "Ardea cinerea", "chinese_name": "苍鹭", "confidence": 0.74}


@dataclass
class Station:
    base: str
    service: CentralService
    link: MqttLink
    events: dict[str, EventPayload] = field(default_factory=dict)

    def publish(self, topic: str, payload: bytes) -> None:
        assert self.link.publish(topic, payload, qos=1).wait(10), f"no PUBACK for {topic}"

    def heartbeat(self, node: str) -> None:
        site = NODES[node]
        beat = HeartbeatPayload(
            site=site,
            node=node,
            sent_at=datetime.now(UTC),
            uptime_s=3600,
            cpu_temp_c=51.5,
            disk_free_mb=12_800,
            outbox_depth=0,
            last_seq=len(self.events),
            cameras={"cam1": "ok", "cam2": "frozen"} if node == "cx-01" else {"lake-east": "ok"},
            software_version="0.1.0",
            models={"yolox_nano": "2024.1", "nanodet_m": "2024.1"},
        )
        self.publish(heartbeat_topic(site, node), encode(beat))

    def stop_node(self, node: str) -> None:
        """What mosquitto publishes when a node's connection dies: its last will."""
        site = NODES[node]
        will = StatusPayload(site=site, node=node, state=NodeState.OFFLINE)
        self.publish(status_topic(site, node), encode(will))

    def stored(self) -> int:
        return self.service.stored_events()


def _events(image_sha: str, size: int) -> dict[str, EventPayload]:
    now = datetime.now(UTC)
    box = {
        "x": 0.32,
        "y": 0.28,
        "w": 0.22,
        "h": 0.3,
        "category": "bird",
        "label": "bird",
        "confidence": 0.91,
    }
    ref = [EvidenceRef(name="frame.jpg", sha256=image_sha, size=size)]
    common: dict[str, Any] = {"created_at": now, "confidence": 0.9, "evidence": ref}

    def ev(name: str, seq: int, node: str, minutes: int, **kw: Any) -> tuple[str, EventPayload]:
        data = {
            "event_id": uuid.uuid4(),
            "seq": seq,
            "site": NODES[node],
            "node": node,
            "camera": "cam1" if node == "cx-01" else "lake-east",
            "kind": "anomaly",
            "category": "bird",
            "captured_at": now - timedelta(minutes=minutes),
            "severity": "warning",
            "count": 1,
            "boxes": [box],
            **common,
            **kw,
        }
        return name, EventPayload.model_validate(data)

    return dict(
        [
            ev(
                "dead_egret",
                1,
                "cx-01",
                40,
                rule="motionless_bird",
                severity="alert",
                captured_until=now - timedelta(minutes=25),
                species=EGRET,
                message_zh="发现1只白鹭在同一位置静止超过15分钟，疑似死亡或患病",
                message_en="1 little egret motionless for over 15 minutes: possibly dead or sick",
            ),
            ev(
                "dog",
                2,
                "cx-01",
                90,
                rule="free_roaming_dog",
                category="dog",
                severity="alert",
                boxes=[{**box, "category": "dog", "label": "dog"}],
                message_zh="发现游荡犬进入保护区",
                message_en="a free-roaming dog in the reserve",
            ),
            ev(
                "night_person",
                3,
                "cx-01",
                300,
                rule="night_intrusion",
                category="person",
                severity="warning",
                boxes=[{**box, "category": "person", "label": "person"}],
                message_zh="夜间发现人员活动",
                message_en="a person at night",
            ),
            ev(
                "heron",
                4,
                "cx-01",
                20,
                kind="observation",
                severity="info",
                species=HERON,
                message_zh="观测到苍鹭1只",
                message_en="1 grey heron seen",
            ),
            ev(
                "egret_seen",
                5,
                "cx-01",
                10,
                kind="observation",
                severity="info",
                species=EGRET,
                count=3,
                message_zh="观测到白鹭3只",
                message_en="3 little egrets seen",
            ),
            ev(
                "lake_count",
                1,
                "xz-01",
                60,
                rule="abnormal_count",
                severity="warning",
                species=EGRET,
                count=40,
                message_zh="白鹭数量异常（40只，常见12只）",
                message_en="abnormal count of little egrets (40, usually 12)",
            ),
        ]
    )


def add_people(
    session: Session,
    people: dict[str, tuple[accounts.Role, list[str], str]],
    *,
    known_sites: Iterable[str],
    password: str = PASSWORD,
) -> None:
    """Console accounts: name → (role, sites, display name), all with `password`."""
    known = list(known_sites)
    for name, (role, sites, shown) in people.items():
        accounts.create_user(
            session=session,
            name=name,
            password=password,
            role=role,
            sites=sites,
            known_sites=known,
            display_name=shown,
            now=datetime.now(UTC),
        )


def _token_env(node: str) -> str:
    return "WW_UPLOAD_" + node.replace("-", "_").upper()


@contextmanager
def live_station(
    *, workdir: Path, mosquitto_port: int, database_url: str, image: Path
) -> Iterator[Station]:
    """Start central, create the accounts, send the nodes' heartbeats and events over MQTT and
    upload the evidence over HTTP; stopped on exit."""
    port = free_port()
    for node, token in TOKENS.items():  # the upload tokens come from the environment
        os.environ[_token_env(node)] = token
    cfg = CentralConfig.model_validate(
        {
            "data_dir": str(workdir / "central"),
            "database_url": database_url,
            "mqtt": {
                "host": "127.0.0.1",
                "port": mosquitto_port,
                "client_id": f"central-{uuid.uuid4().hex[:8]}",
                "share_group": f"g{uuid.uuid4().hex[:8]}",
            },
            "http": {"host": "127.0.0.1", "port": port},
            "report": {
                "station_name": "湖州市陆生野生动物疫源疫病监测站",
                "station_code": "ZJ-HZ-001",
            },
            "sites": SITES,
            "alerts": {"duty_phones": ["13800000000"]},
            "evidence": {
                "uploaders": [
                    {"site": NODES[n], "node": n, "token_env": _token_env(n)} for n in NODES
                ]
            },
        }
    )
    service = CentralService(cfg)
    service.start()
    link = MqttLink(
        f"nodes-{uuid.uuid4().hex[:8]}",
        BrokerAddress("127.0.0.1", mosquitto_port),
        clean_session=True,
    )
    link.start()
    try:
        assert link.wait_connected(10)
        assert all(i.wait_connected(10) for i in service.ingestors)
        assert service.session_factory is not None
        with service.session_factory.begin() as session:
            for name, (role, sites, shown) in PEOPLE.items():
                accounts.create_user(
                    session=session,
                    name=name,
                    password=PASSWORD,
                    role=role,
                    sites=sites,
                    known_sites=cfg.sites,
                    display_name=shown,
                    now=datetime.now(UTC),
                )
        station = Station(base=f"http://127.0.0.1:{port}", service=service, link=link)
        data = image.read_bytes()
        station.events = _events(hashlib.sha256(data).hexdigest(), len(data))
        for node in NODES:
            station.heartbeat(node)
        for event in station.events.values():
            station.publish(event_topic(event.site, event.node), encode(event))
        assert wait_for(lambda: station.stored() >= len(station.events), 20)
        assert wait_for(lambda: _up(station.base), 10)
        with httpx.Client(base_url=station.base, timeout=10) as http:
            for event in station.events.values():
                r = http.put(
                    f"/api/evidence/{event.event_id}/frame.jpg",
                    content=data,
                    headers={
                        "Authorization": f"Bearer {TOKENS[event.node]}",
                        "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}",
                        "X-Content-SHA256": event.evidence[0].sha256,
                    },
                )
                assert r.status_code == 200 and r.json()["complete"], r.text
        yield station
    finally:
        link.stop()
        service.stop()


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
