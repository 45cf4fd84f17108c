"""An alert-severity anomaly pages the duty officer exactly once, in Chinese, naming the site."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import EventPayload
from broker.topics import event_topic
from broker.validate import encode
from central import crud
from central.alerts import SmsError
from central.alerts import dispatcher as dispatcher_module
from central.alerts.dispatcher import AlertDispatcher
from central.alerts.file import FileSmsBackend
from central.app import CentralService
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


def _rows(session_factory: sessionmaker[Session]) -> list[SmsMessage]:
    with session_factory() as s:
        return list(s.scalars(sa.select(SmsMessage).order_by(SmsMessage.id)))


def _store(session_factory: sessionmaker[Session], event: EventPayload) -> EventPayload:
    with session_factory.begin() as s:
        crud.insert_event(session=s, payload=event, received_at=datetime.now(UTC))
    return event


def _lines(path: Path) -> list[dict[str, str]]:
    return [json.loads(x) for x in path.read_text("utf-8").splitlines()] if path.exists() else []


def test_failed_sms_is_retried_by_the_monitor_until_sent(
    central_config: CentralConfig,
    publisher: Publish,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The file back-end really fails (its folder is a file) when the alert comes in. Before,
    the SMS stayed 'failed' until the next anomaly; now the monitor tries again."""
    monkeypatch.setattr(dispatcher_module, "SMS_RETRY_MIN_S", 0.05)
    monkeypatch.setattr(dispatcher_module, "SMS_RETRY_MAX_S", 0.2)
    monkeypatch.setattr(dispatcher_module, "MAX_SMS_ATTEMPTS", 10_000)
    blocker = tmp_path / "gateway"
    blocker.write_text("not a folder")
    sms_file = blocker / "sms.jsonl"
    cfg = central_config.model_copy(
        update={
            "alerts": central_config.alerts.model_copy(update={"sms_file": sms_file}),
            "monitor": central_config.monitor.model_copy(update={"check_interval_s": 0.1}),
        }
    )
    service = CentralService(cfg, serve_http=False)
    service.start()
    assert service.session_factory is not None
    factory = service.session_factory
    try:
        alert = make_event(
            kind="anomaly", category="dog", rule="free_roaming_dog", severity="alert"
        )
        assert all(i.wait_connected(10) for i in service.ingestors)  # SUBACKs are in
        publisher(TOPIC, encode(alert))
        assert wait_for(lambda: service.stored_events() == 1, 15)
        assert wait_for(lambda: bool(_rows(factory)) and _rows(factory)[0].attempts >= 2, 10)
        (row,) = _rows(factory)
        assert row.status in ("failed", "sending") and "cannot write SMS file" in (row.error or "")
        blocker.unlink()  # the gateway is back
        assert wait_for(lambda: _rows(factory)[0].status == "sent", 10)
    finally:
        service.stop()
    (row,) = _rows(factory)
    assert row.error is None and row.sent_at is not None
    (line,) = _lines(sms_file)
    assert line["phone"] == "13800000000" and "流浪犬进入保护区" in line["text"]


class FailingFirst:
    """A gateway that is down for the first `failures` sends, then hands over to the file."""

    def __init__(self, failures: int, path: Path) -> None:
        self.failures, self.calls = failures, 0
        self.file = FileSmsBackend(path)

    def send(self, phone: str, text: str) -> None:
        """Fail with SmsError while down."""
        self.calls += 1
        if self.calls <= self.failures:
            raise SmsError(f"gateway timeout #{self.calls}")
        self.file.send(phone, text)


def test_sms_retries_back_off_and_stop_at_the_cap(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    t0 = datetime(2026, 11, 22, 3, tzinfo=UTC)
    down = FailingFirst(failures=1000, path=tmp_path / "never.jsonl")
    dispatcher = AlertDispatcher(
        config=central_config,
        session_factory=session_factory,
        backend=down,
        max_attempts=4,
        retry_min_s=30,
        retry_max_s=90,
    )
    alert = make_event(kind="anomaly", category="person", rule="night_intrusion", severity="alert")
    with session_factory.begin() as s:
        crud.insert_event(session=s, payload=alert, received_at=t0)
        assert dispatcher.enqueue(s, event=alert) == 1
    tries: list[int] = []
    for seconds in (0, 10, 29, 30, 60, 89, 90, 179, 180, 10_000):
        dispatcher.send_pending(now=t0 + timedelta(seconds=seconds))
        tries.append(down.calls)
    # tries at 0, then 30 s later, 60 s after that, then at most 90 s apart; 4 tries in all
    assert tries == [1, 1, 1, 2, 2, 2, 3, 3, 4, 4]
    (row,) = _rows(session_factory)
    assert (row.status, row.attempts, row.error) == ("failed", 4, "gateway timeout #4")


def test_sms_goes_out_once_the_gateway_is_back(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    flaky = FailingFirst(failures=2, path=tmp_path / "sms.jsonl")
    dispatcher = AlertDispatcher(
        config=central_config, session_factory=session_factory, backend=flaky, retry_min_s=0
    )
    alert = _store(
        session_factory,
        make_event(kind="anomaly", category="dog", rule="free_roaming_dog", severity="alert"),
    )
    assert dispatcher.dispatch(alert) == 0  # the gateway times out ...
    assert dispatcher.send_pending() == 0  # ... and again ...
    assert dispatcher.send_pending() == 1  # ... then it is back
    assert dispatcher.send_pending() == 0  # sent once
    (row,) = _rows(session_factory)
    assert (row.status, row.attempts, row.error) == ("sent", 3, None)
    assert len(_lines(tmp_path / "sms.jsonl")) == 1


def test_a_backend_crash_fails_its_row_and_the_others_still_go(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """A back-end raising something other than SmsError (a bug, a library error) marks that
    SMS failed with the error text; it neither stops the round nor leaves a row 'sending'."""
    phones = ["13800000001", "13800000002", "13800000003"]
    cfg = central_config.model_copy(
        update={"alerts": central_config.alerts.model_copy(update={"duty_phones": phones})}
    )
    file = FileSmsBackend(tmp_path / "sms.jsonl")

    class Broken:
        def send(self, phone: str, text: str) -> None:
            if phone == phones[1]:
                raise KeyError("gateway answered without a message id")
            file.send(phone, text)

    dispatcher = AlertDispatcher(config=cfg, session_factory=session_factory, backend=Broken())
    alert = _store(
        session_factory,
        make_event(kind="anomaly", category="person", rule="night_intrusion", severity="alert"),
    )
    assert dispatcher.dispatch(alert) == 2
    rows = {r.phone: r for r in _rows(session_factory)}
    assert [rows[p].status for p in phones] == ["sent", "failed", "sent"]
    assert rows[phones[1]].error == "KeyError: 'gateway answered without a message id'"
    assert [line["phone"] for line in _lines(tmp_path / "sms.jsonl")] == [phones[0], phones[2]]
