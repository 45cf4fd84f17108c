"""An alert-severity anomaly pages the duty officer exactly once, in Chinese, naming the site."""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from broker.topics import event_topic
from broker.validate import encode
from central.config import CentralConfig
from central.db.models import SmsMessage
from tests.central.conftest import IngestorFactory, make_event
from tests.helpers import wait_for

Publish = Callable[[str, bytes], None]
TOPIC = event_topic("changxing", "cx-01")


def test_alert_anomaly_sends_exactly_one_sms(
    start_ingestor: IngestorFactory,
    publisher: Publish,
    session_factory: sessionmaker[Session],
    central_config: CentralConfig,
) -> None:
    ingestor = start_ingestor()
    alert = make_event(
        kind="anomaly",
        category="person",
        rule="night_intrusion",
        severity="alert",
        count=2,
        confidence=0.86,
    )
    warning = make_event(kind="anomaly", category="bird", rule="abnormal_count", severity="warning")
    observation = make_event()
    for payload in (alert, alert, warning, observation):  # the alert arrives twice
        publisher(TOPIC, encode(payload))
    assert wait_for(lambda: ingestor.counters.stored + ingestor.counters.duplicates == 4, 10)
    sms_file = central_config.sms_file
    assert wait_for(
        lambda: (
            session_factory().scalar(
                sa.select(sa.func.count())
                .select_from(SmsMessage)
                .where(SmsMessage.status == "sent")
            )
            == 1
        ),
        10,
    )
    lines = sms_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    sms = json.loads(lines[0])
    assert sms["phone"] == "13800000000"
    text = sms["text"]
    assert text.startswith("【WildWatch预警】长兴扬子鳄国家级自然保护区 cam1")
    assert "11月22日 02:13" in text  # 18:13 UTC is 02:13 next day in Asia/Shanghai
    assert "夜间人员/车辆闯入（疑似盗猎）" in text
    assert "人员 ×2" in text
    assert "置信度0.86" in text
    with session_factory() as s:
        row = s.scalars(sa.select(SmsMessage)).one()
    assert row.event_id == str(alert.event_id)
    assert row.sent_at is not None and row.attempts == 1
