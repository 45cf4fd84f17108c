"""Sending the alert notifications: Tencent Cloud SMS first (the real SDK against a local server
speaking its API), the file back-end as the fallback; caps, failover, uncertain sends settled
by receipts, duplicates of receipts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from central import alerting
from central.alerts import sender
from central.alerts.file import FileProvider
from central.alerts.providers import DeliveryState, Receipt, SmsProvider
from central.alerts.sender import Caps, Sender
from central.alerts.tencent import TencentProvider, TencentSettings
from central.db.models import Alert, AlertNotification
from tests.central.test_alerting import CONFIG, death
from tests.central.test_alerting import session as session
from tests.helpers import FakeClock
from tests.peers.tencent_sms import TencentSmsServer

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 12, 2, 10, 0, tzinfo=TZ)
KEY_ENV = "WILDWATCH_TEST_TENCENT_KEY"


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock(T0.timestamp())


@pytest.fixture()
def server(clock: FakeClock) -> Iterator[TencentSmsServer]:
    with TencentSmsServer(templates={"1001": 4}, clock=clock) as srv:
        yield srv


@pytest.fixture()
def tencent(server: TencentSmsServer, clock: FakeClock) -> TencentProvider:
    settings = TencentSettings(
        secret_id=server.secret_id,
        secret_key_env=KEY_ENV,
        sdk_app_id=server.sdk_app_id,
        sign_name="野保监测",
        templates={"alert": "1001"},
        template_params={"alert": ["site", "what", "count", "code"]},
        endpoint=server.endpoint,
        scheme="http",
        timeout_s=2,
    )
    return TencentProvider(
        settings,
        environ={KEY_ENV: server.secret_key},
        clock=lambda: datetime.fromtimestamp(clock(), UTC),
    )


def pending_alert(session: Session) -> list[AlertNotification]:
    """A dead egret at changxing, past group_wait: one notification (the duty officer)."""
    alerting.observe(session=session, event=death(T0), config=CONFIG, now=T0)
    made = alerting.tick(session=session, config=CONFIG, now=T0 + timedelta(seconds=30), tz=TZ)
    session.flush()
    return made


def send(sender_: Sender, session: Session, now: datetime) -> int:
    """What the pager does: commit what the lifecycle stored, send (each message in its own
    transactions), then read the rows again."""
    session.commit()
    sent = sender_.send_pending(sessionmaker(bind=session.get_bind()), now)
    session.expire_all()
    return sent


def make_sender(*providers: SmsProvider, cap: int = 10) -> Sender:
    return Sender(
        providers,
        site_names={"changxing": "长兴保护区"},
        tz=TZ,
        caps=Caps(per_number_per_day=cap),
    )


def test_sent_through_tencent_with_the_template_and_the_code(
    session: Session, tencent: TencentProvider, server: TencentSmsServer
) -> None:
    [row] = pending_alert(session)
    assert send(make_sender(tencent), session, T0 + timedelta(seconds=31)) == 1
    assert row.state == "submitted" and row.provider == "tencent" and row.message_id
    sent = server.by_serial(row.message_id)
    alert = session.get(Alert, row.alert_id)
    assert alert is not None
    code = alert.ack_code
    assert sent.params[0] == "长兴保护区" and sent.params[3] == code
    # the receipt arrives by push: delivered, and a duplicate changes nothing
    report = server.mark_delivered(row.message_id)
    receipt = Receipt(
        provider="tencent",
        message_id=report.serial_no,
        phone=row.phone,
        state=DeliveryState.DELIVERED,
        code="DELIVRD",
    )
    assert sender.apply_receipt(session, receipt, T0 + timedelta(minutes=1))
    assert sender.apply_receipt(session, receipt, T0 + timedelta(minutes=2))
    assert row.state == "delivered"


def test_a_provider_error_fails_over_to_the_next(
    session: Session, tencent: TencentProvider, server: TencentSmsServer, tmp_path: Path
) -> None:
    [row] = pending_alert(session)
    server.fail_next(1, code="InternalError")
    backup = FileProvider(tmp_path / "sms.jsonl")
    assert send(make_sender(tencent, backup), session, T0 + timedelta(seconds=31)) == 1
    assert row.state == "submitted" and row.provider == "file"
    line = json.loads((tmp_path / "sms.jsonl").read_text(encoding="utf-8"))
    assert line["phone"] == row.phone and "回复 1 " in line["text"]
    assert line["reference"] == row.reference


def test_a_timeout_is_not_sent_twice_until_receipts_decide(
    session: Session, tencent: TencentProvider, server: TencentSmsServer, tmp_path: Path
) -> None:
    [row] = pending_alert(session)
    server.hold_next(1, seconds=30)  # longer than the SDK's 2 s timeout
    backup = FileProvider(tmp_path / "sms.jsonl")
    try:
        send(make_sender(tencent, backup), session, T0 + timedelta(seconds=31))
    finally:
        server.release()
    assert row.state == "uncertain" and row.provider == "tencent"
    assert not (tmp_path / "sms.jsonl").exists()  # not sent again through the fallback
    # not resent before UNCERTAIN_AFTER...
    assert sender.retry_lost(session, T0 + timedelta(minutes=5)) == 0
    # ...and a receipt says the provider had it after all
    receipt = Receipt(
        provider="tencent",
        message_id="",
        phone=row.phone,
        state=DeliveryState.SUBMITTED,
        reference=row.reference,
    )
    assert sender.apply_receipt(session, receipt, T0 + timedelta(minutes=6))
    assert row.state == "submitted"


def test_an_uncertain_send_with_no_receipt_goes_again(
    session: Session, tencent: TencentProvider, server: TencentSmsServer
) -> None:
    [row] = pending_alert(session)
    row.state, row.provider, row.updated_at = "uncertain", "tencent", T0
    assert sender.retry_lost(session, T0 + sender.UNCERTAIN_AFTER) == 1
    assert row.state == "pending"
    send(make_sender(tencent), session, T0 + sender.UNCERTAIN_AFTER)
    assert row.state == "submitted"


def test_a_number_over_its_daily_cap_is_not_sent(
    session: Session, tmp_path: Path, tencent: TencentProvider
) -> None:
    first, *_ = pending_alert(session)
    file = FileProvider(tmp_path / "sms.jsonl")
    send(make_sender(file, cap=1), session, T0 + timedelta(seconds=31))
    assert first.state == "submitted"
    # a second incident the same day, to the same duty officer
    heron = {"scientific_name": "Ardea cinerea", "chinese_name": "苍鹭", "confidence": 0.8}
    at = T0 + timedelta(minutes=5)
    alerting.observe(session=session, event=death(at, species=heron), config=CONFIG, now=at)
    [second] = alerting.tick(session=session, config=CONFIG, now=at + timedelta(seconds=30), tz=TZ)
    session.flush()
    send(make_sender(file, cap=1), session, at + timedelta(seconds=31))
    assert second.state == "capped" and second.code == "daily_cap"
    assert len((tmp_path / "sms.jsonl").read_text(encoding="utf-8").splitlines()) == 1


def test_every_provider_down_keeps_the_message_for_later(
    session: Session, tmp_path: Path, tencent: TencentProvider, server: TencentSmsServer
) -> None:
    [row] = pending_alert(session)
    server.fail_next(1, code="InternalError")
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the folder should be")
    dead = FileProvider(blocked / "sms.jsonl")
    assert send(make_sender(tencent, dead), session, T0 + timedelta(seconds=31)) == 0
    assert row.state == "pending" and row.attempts == 1 and "InternalError" in (row.code or "")
    # not tried again before the pause; then it goes
    assert send(make_sender(tencent), session, T0 + timedelta(seconds=60)) == 0
    later = T0 + timedelta(seconds=31) + sender.RETRY_PAUSE
    assert send(make_sender(tencent), session, later) == 1
    assert row.state == "submitted"
