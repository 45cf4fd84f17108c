"""Central fixtures: a migrated database, a config pointing at the test broker, a running ingest."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from broker.client import BrokerAddress, MqttLink
from broker.payloads import EventPayload, HeartbeatPayload
from broker.topics import heartbeat_topic
from broker.validate import encode
from central import roster
from central.alerts.dispatcher import AlertDispatcher
from central.alerts.file import FileSmsBackend
from central.config import CentralConfig
from central.db.migrate import upgrade
from central.db.session import make_engine, make_session_factory
from central.ingest import Ingestor
from central.roster import DayKind, DutyRole
from tests.helpers import MosquittoServer, wait_for

SITES = {
    "changxing": {
        "name_zh": "长兴扬子鳄国家级自然保护区",
        "name_en": "Changxing Chinese Alligator Reserve",
        "station_code": "ZJ-HZ-CX",
    },
    "xiazhuhu": {
        "name_zh": "德清下渚湖湿地",
        "name_en": "Xiazhu Lake Wetland, Deqing",
        "station_code": "ZJ-HZ-DQ",
    },
}


def unique(prefix: str) -> str:
    """A short unique id (client ids, share groups) so persistent sessions never cross tests."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def make_event(**overrides: Any) -> EventPayload:
    """A valid observation event at changxing; override any field."""
    data: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "seq": 1,
        "site": "changxing",
        "node": "cx-01",
        "camera": "cam1",
        "kind": "observation",
        "category": "bird",
        "captured_at": datetime(2026, 11, 21, 18, 13, tzinfo=UTC),
        "created_at": datetime(2026, 11, 21, 18, 13, 5, tzinfo=UTC),
        "severity": "info",
        "count": 1,
        "confidence": 0.9,
    }
    data.update(overrides)
    return EventPayload.model_validate(data)


T0 = datetime(2026, 11, 21, 6, tzinfo=UTC)  # the first death of the mortality tests
EGRET = {"scientific_name": "Egretta garzetta", "chinese_name": "白鹭", "confidence": 0.9}


def make_death(*, node: str, at: datetime, seq: int, **overrides: Any) -> EventPayload:
    """A motionless_bird anomaly at changxing: an egret seen still for 12 minutes until `at`
    (its death time). Severity warning, which pages no one, unless overridden."""
    data: dict[str, Any] = {
        "kind": "anomaly",
        "rule": "motionless_bird",
        "severity": "warning",
        "node": node,
        "seq": seq,
        "captured_at": at - timedelta(minutes=12),
        "captured_until": at,
        "species": EGRET,
    }
    data.update(overrides)
    return make_event(**data)


def three_deaths() -> list[EventPayload]:
    """Three dead egrets within an hour from two nodes (cx-01 at T0 and +30 min, cx-02 at
    +60 min): a cluster only central, which sees both nodes, can raise."""
    return [
        make_death(node=node, at=T0 + timedelta(minutes=minutes), seq=seq)
        for node, minutes, seq in [("cx-01", 0, 1), ("cx-01", 30, 2), ("cx-02", 60, 1)]
    ]


@pytest.fixture()
def central_config(tmp_path: Path, database_url: str, mosquitto: MosquittoServer) -> CentralConfig:
    """Config for one test: its own database, SMS file, client id and share group."""
    return CentralConfig.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "database_url": database_url,
            "mqtt": {
                "host": "127.0.0.1",
                "port": mosquitto.port,
                "client_id": unique("central-"),
                "share_group": unique("g"),
            },
            "http": {"host": "127.0.0.1", "port": 8000},
            "report": {"station_name": "湖州市监测站", "station_code": "ZJ-HZ-001"},
            "sites": SITES,
            "alerts": {"duty_phones": ["13800000000"], "sms_file": str(tmp_path / "sms.jsonl")},
        }
    )


@pytest.fixture()
def engine(database_url: str) -> Iterator[sa.Engine]:
    """A migrated database."""
    upgrade(database_url)
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture()
def session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    """Sessions on the migrated database."""
    return make_session_factory(engine)


@pytest.fixture()
def dispatcher(
    central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> AlertDispatcher:
    """Alert dispatcher writing SMS to the test's file."""
    return AlertDispatcher(
        config=central_config,
        session_factory=session_factory,
        backend=FileSmsBackend(central_config.sms_file),
    )


@pytest.fixture()
def publisher(mosquitto: MosquittoServer) -> Iterator[Callable[[str, bytes], None]]:
    """publish(topic, payload): QoS 1 publish from a test edge client, waiting for PUBACK."""
    link = MqttLink(unique("pub-"), BrokerAddress("127.0.0.1", mosquitto.port), clean_session=True)
    link.start()
    assert link.wait_connected(10)

    def publish(topic: str, payload: bytes) -> None:
        assert link.publish(topic, payload, qos=1).wait(10), f"publish to {topic} not acked"

    yield publish
    link.stop()


IngestorFactory = Callable[..., Ingestor]


@pytest.fixture()
def start_ingestor(
    central_config: CentralConfig,
    session_factory: sessionmaker[Session],
    dispatcher: AlertDispatcher,
    publisher: Callable[[str, bytes], None],
) -> Iterator[IngestorFactory]:
    """Start an ingestor (same client id each call, so a restart resumes its session) and wait
    until it demonstrably receives (a probe heartbeat was stored)."""
    started: list[Ingestor] = []

    def start(**kwargs: Any) -> Ingestor:
        probe_first = kwargs.pop("probe", True)
        mqtt = central_config.mqtt
        link = MqttLink(
            mqtt.client_id,
            BrokerAddress(mqtt.host, mqtt.port),
            clean_session=False,
            manual_ack=True,
        )
        ingestor = Ingestor(
            link=link,
            session_factory=session_factory,
            dispatcher=dispatcher,
            share_group=mqtt.share_group,
            retry_min_s=kwargs.pop("retry_min_s", 0.05),
            retry_max_s=kwargs.pop("retry_max_s", 0.2),
            **kwargs,
        )
        ingestor.start()
        started.append(ingestor)
        assert ingestor.wait_connected(10)
        if probe_first:
            probe = HeartbeatPayload(
                site="probe",
                node="probe",
                sent_at=datetime.now(UTC),
                uptime_s=1,
                outbox_depth=0,
                software_version="test",
            )
            # wait_connected returned after the SUBACKs: the broker routes this probe to it.
            publisher(heartbeat_topic("probe", "probe"), encode(probe))
            heard = wait_for(lambda: ingestor.counters.heartbeats > 0, 10)
            assert heard, f"ingest not live: {ingestor.counters}"
        return ingestor

    yield start
    for ingestor in started:
        ingestor.stop()


def on_duty_all_day(
    session: Session, *, user_name: str, role: DutyRole, site: str = "changxing"
) -> None:
    """Put a person on the roster around the clock (two shifts, one past midnight)."""
    for start, end in ((time(0), time(12)), (time(12), time(0))):
        roster.add_shift(
            session=session,
            site=site,
            role=role,
            user_name=user_name,
            day_kind=DayKind.ANY,
            start=start,
            end=end,
        )
