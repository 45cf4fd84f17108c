"""Each site's daily report to the bureau: by mail (aiosmtpd with STARTTLS and login) and HTTP
upload (a local bureau endpoint), one report per site and day whatever the retries, every try
stored, the heads told at the draft, for an unsigned report, at 15:10 and at 15:30."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from central import accounts, crud, express, review
from central import cases as casebook
from central.accounts import Role
from central.app import CentralService
from central.config import CentralConfig
from central.db.models import Alert, AlertNotification, DeliveryAttempt, ReportDelivery
from central.reports.delivery import OUTBOX, Courier, draft_time, undelivered_sites
from central.reports.settings import DeliveryConfig
from central.web import queries
from tests.central.conftest import make_event
from tests.helpers import wait_for
from tests.peers.bureau_endpoint import BureauEndpoint
from tests.peers.mail_server import MailServer

SH = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 22)
CUTOFF = datetime(2026, 11, 22, 15, 0, tzinfo=SH)
TOKEN = "bureau-token-0123456789"
MAIL_PASSWORD = "mail-s3cret"


@pytest.fixture()
def mail(tmp_path: Path) -> Iterator[MailServer]:
    with MailServer(tmp_path / "certs", user="station", password=MAIL_PASSWORD) as server:
        yield server


@pytest.fixture()
def bureau() -> Iterator[BureauEndpoint]:
    with BureauEndpoint(token=TOKEN) as endpoint:
        yield endpoint


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WW_MAIL_PASSWORD", MAIL_PASSWORD)
    monkeypatch.setenv("WW_BUREAU_TOKEN", TOKEN)


def smtp_settings(mail: MailServer, **over: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": mail.port,
        "ca_file": str(mail.ca_file),
        "username": "station",
        "password_env": "WW_MAIL_PASSWORD",
        "sender": "report@station.example.cn",
        "to": ["yibing@lyj.zj.example.cn"],
        "timeout_s": 5,
        **over,
    }


def http_settings(bureau: BureauEndpoint, **over: Any) -> dict[str, Any]:
    return {"url": bureau.url, "token_env": "WW_BUREAU_TOKEN", "timeout_s": 5, **over}


def with_delivery(config: CentralConfig, **delivery: Any) -> CentralConfig:
    data = config.model_dump(mode="json", exclude={"mqtt": {"password"}})
    data["report"]["delivery"] = delivery
    return CentralConfig.model_validate(data)


def _people(session_factory: sessionmaker[Session], config: CentralConfig) -> None:
    with session_factory.begin() as session:
        for name, site, phone in (
            ("zhang", "changxing", "13900000001"),
            ("zhou", "xiazhuhu", "13900000002"),
        ):
            accounts.create_user(
                session=session,
                name=name,
                password="a-long-password-1",
                role=Role.HEAD,
                sites=[site],
                known_sites=config.sites,
                phone=phone,
                now=CUTOFF - timedelta(days=2),
            )


def _day(session_factory: sessionmaker[Session], config: CentralConfig) -> None:
    """A dead egret at changxing; changxing's head signs at 14:40, xiazhuhu's does not."""
    _people(session_factory, config)
    death = make_event(
        captured_at=CUTOFF - timedelta(hours=5),
        kind="anomaly",
        rule="motionless_bird",
        severity="critical",
        species={"scientific_name": "Egretta garzetta", "chinese_name": "白鹭", "confidence": 0.9},
    )
    with session_factory.begin() as session:
        crud.insert_event(session=session, payload=death, received_at=CUTOFF - timedelta(hours=5))
        queries.sign_report(
            session=session,
            day=DAY,
            site="changxing",
            signer="zhang",
            note="已核实",
            as_of=CUTOFF - timedelta(minutes=30),
            now=CUTOFF - timedelta(minutes=20),
            reporter="李监测",
            reporter_phone="13800138000",
        )


def _notices(session_factory: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    """(rule, site, phone) of every message to a head about the report, oldest first."""
    with session_factory() as session:
        rows = session.execute(
            sa.select(Alert.rule, Alert.site, AlertNotification.phone)
            .join(AlertNotification, AlertNotification.alert_id == Alert.id)
            .where(AlertNotification.template == "report_notice")
            .order_by(AlertNotification.id)
        ).all()
    return [(r, s, p) for r, s, p in rows]


def _rows(session_factory: sessionmaker[Session]) -> list[ReportDelivery]:
    with session_factory() as session:
        return list(session.scalars(sa.select(ReportDelivery).order_by(ReportDelivery.id)))


def _attempts(session_factory: sessionmaker[Session]) -> list[DeliveryAttempt]:
    with session_factory() as session:
        return list(session.scalars(sa.select(DeliveryAttempt).order_by(DeliveryAttempt.id)))


def _pdf_text(data: bytes) -> str:
    return subprocess.run(
        ["pdftotext", "-", "-"], input=data, capture_output=True, check=True
    ).stdout.decode()


def _attachments(message: EmailMessage) -> dict[str, bytes]:
    found = {}
    for part in message.iter_attachments():
        payload = part.get_content()
        found[str(part.get_filename())] = (
            payload if isinstance(payload, bytes) else payload.encode()
        )
    return found


def test_signed_and_unsigned_reports_reach_mail_and_endpoint_once_with_receipts(
    central_config: CentralConfig,
    session_factory: sessionmaker[Session],
    mail: MailServer,
    bureau: BureauEndpoint,
) -> None:
    bureau.start()
    config = with_delivery(central_config, smtp=smtp_settings(mail), http=http_settings(bureau))
    _day(session_factory, config)
    courier = Courier(config=config, session_factory=session_factory)
    courier.tick(CUTOFF + timedelta(seconds=5))

    # by mail: one message per site, over TLS after login, PDF + XLSX + JSON attached
    assert len(mail.messages) == 2 and all(mail.tls_used)
    assert mail.logins == [("station", True), ("station", True)]
    by_site = {
        ("changxing" if "长兴" in str(m["Subject"]) else "xiazhuhu"): m for m in mail.messages
    }
    signed, unsigned = by_site["changxing"], by_site["xiazhuhu"]
    assert not str(signed["Subject"]).startswith("【未经审核】")
    assert str(unsigned["Subject"]).startswith("【未经审核】")
    files = _attachments(signed)
    assert sorted(files) == [
        "daily_report_2026-11-22_changxing.json",
        "daily_report_2026-11-22_changxing.pdf",
        "daily_report_2026-11-22_changxing.xlsx",
    ]
    printed = _pdf_text(files["daily_report_2026-11-22_changxing.pdf"])
    assert "长兴扬子鳄" in printed and "白鹭" in printed and "李监测" in printed
    assert "下渚湖" not in printed  # one site per report
    unsigned_pdf = _pdf_text(_attachments(unsigned)["daily_report_2026-11-22_xiazhuhu.pdf"])
    assert "未经审核" in unsigned_pdf and "零报告" in unsigned_pdf
    body = signed.get_body(preferencelist=("plain",))
    assert body is not None and "填报人 Reporter：李监测" in body.get_content()

    # by upload: one filed report per site, files matching their sha256 (the endpoint checks)
    assert sorted(bureau.filed) == [
        "wildwatch-ZJ-HZ-CX-changxing-2026-11-22",
        "wildwatch-ZJ-HZ-DQ-xiazhuhu-2026-11-22",
    ]
    filed = bureau.filed["wildwatch-ZJ-HZ-DQ-xiazhuhu-2026-11-22"]
    assert filed.fields["signed"] == "false" and filed.fields["report_date"] == "2026-11-22"
    assert len(filed.files) == 3

    # receipts: the Message-ID and the bureau's receipt id, kept per site and channel
    rows = {(r.site, r.channel): r for r in _rows(session_factory)}
    assert {r.state for r in rows.values()} == {"delivered"}
    assert rows[("changxing", "smtp")].receipt == signed["Message-ID"]
    assert rows[("xiazhuhu", "http")].receipt == filed.receipt_id
    assert rows[("changxing", "smtp")].signed and not rows[("xiazhuhu", "smtp")].signed

    # later rounds send nothing again; the unsigned site's head was told, nobody else
    for minutes in (1, 10, 30, 60):
        courier.tick(CUTOFF + timedelta(minutes=minutes))
    assert len(mail.messages) == 2 and len(bureau.filed) == 2
    assert len([s for s in bureau.seen if s.status == 201]) == 2
    assert _notices(session_factory) == [("report_unsigned", "xiazhuhu", "13900000002")]


def test_draft_is_announced_to_heads_of_unsigned_sites(
    central_config: CentralConfig,
    session_factory: sessionmaker[Session],
    mail: MailServer,
) -> None:
    config = with_delivery(central_config, smtp=smtp_settings(mail), draft_at="14:30")
    _day(session_factory, config)  # changxing already signed at 14:40 of the 22nd
    courier = Courier(config=config, session_factory=session_factory)
    courier.tick(CUTOFF - timedelta(minutes=31))
    assert _notices(session_factory) == []
    courier.tick(CUTOFF - timedelta(minutes=30))
    courier.tick(CUTOFF - timedelta(minutes=20))
    assert _notices(session_factory) == [("report_draft", "xiazhuhu", "13900000002")]
    assert mail.messages == []  # nothing is sent before the cut-off


def test_endpoint_down_until_1520_then_5xx_then_slow_is_delivered_once(
    central_config: CentralConfig,
    session_factory: sessionmaker[Session],
    bureau: BureauEndpoint,
) -> None:
    config = with_delivery(
        central_config,
        http=http_settings(bureau, timeout_s=1),
        retry_initial_s=30,
        retry_max_s=120,
    )
    _day(session_factory, config)
    courier = Courier(config=config, session_factory=session_factory)
    now = CUTOFF + timedelta(seconds=5)
    while now < CUTOFF + timedelta(minutes=40):
        if bureau._server is None and now >= CUTOFF + timedelta(minutes=20):
            bureau.fail_next(2, status=503)  # one 503 for each site's first try
            bureau.slow_next(2, seconds=2.5)  # filed, answered after the client's timeout
            bureau.start()
        courier.tick(now)
        now += timedelta(seconds=30)
    rows = _rows(session_factory)
    assert [r.state for r in rows] == ["delivered", "delivered"]
    assert len(bureau.filed) == 2  # one report per site, though each was sent three times
    assert {r.receipt for r in rows} == {f.receipt_id for f in bureau.filed.values()}
    for row in rows:
        tries = [a for a in _attempts(session_factory) if a.delivery_id == row.id]
        assert len(tries) == row.attempts
        before = [a for a in tries if a.started_at < CUTOFF + timedelta(minutes=20)]
        after = [a for a in tries if a.started_at >= CUTOFF + timedelta(minutes=20)]
        assert before and not any(a.ok for a in before)
        assert "ConnectError" in before[0].detail, [(a.started_at, a.detail) for a in tries]
        assert ["503" in after[0].detail, "Timeout" in after[1].detail, after[2].ok] == [
            True,
            True,
            True,
        ]
        # tries at 0:05, 0:35, 1:35, then every 2 min (retry_max_s): 12 refused until 15:20,
        # the 503 at 15:21:35, the timeout at 15:23:35, delivered at 15:25:35
        assert row.attempts == 15
        assert row.delivered_at is not None
        delivered = CUTOFF + timedelta(minutes=25, seconds=35)  # plus what the round took
        assert delivered <= row.delivered_at < delivered + timedelta(seconds=5)
    # 15:10: not yet delivered, so 未上报 and the heads told; delivered before 15:30: no more
    rules = [rule for rule, _site, _phone in _notices(session_factory)]
    assert rules.count("report_missing") == 2 and "report_undelivered" not in rules


def test_mail_refused_then_accepted_and_undelivered_report_pages_head_at_1530(
    central_config: CentralConfig,
    session_factory: sessionmaker[Session],
    mail: MailServer,
) -> None:
    config = with_delivery(central_config, smtp=smtp_settings(mail), retry_max_s=60)
    _day(session_factory, config)
    courier = Courier(config=config, session_factory=session_factory)
    mail.refuse_next(1, code=451)  # a transient refusal for the first message
    mail.stop()  # and then the server goes away for good after one try of each site
    mail.start()
    courier.tick(CUTOFF + timedelta(seconds=5))
    assert len(mail.messages) == 1  # one site refused (451), the other accepted
    mail.stop()
    now = CUTOFF + timedelta(seconds=35)
    while now <= CUTOFF + timedelta(minutes=31):
        courier.tick(now)
        now += timedelta(seconds=30)
    with session_factory() as session:
        assert undelivered_sites(session, config, DAY) == [
            r.site for r in _rows(session_factory) if r.state == "pending"
        ]
    late = [r for r in _rows(session_factory) if r.state == "pending"]
    assert len(late) == 1 and late[0].last_error
    tries = [a for a in _attempts(session_factory) if a.delivery_id == late[0].id]
    assert "451" in tries[0].detail  # the refusal, then the server gone
    assert all("ConnectionRefused" in a.detail for a in tries[1:]) and len(tries) > 5
    notices = _notices(session_factory)
    assert ("report_missing", late[0].site) in [(r, s) for r, s, _ in notices]
    assert ("report_undelivered", late[0].site) in [(r, s) for r, s, _ in notices]
    assert len([n for n in notices if n[0] == "report_undelivered"]) == 1


def test_wrong_mail_password_is_stored_as_the_reason(
    central_config: CentralConfig,
    session_factory: sessionmaker[Session],
    mail: MailServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WW_MAIL_PASSWORD", "wrong")
    config = with_delivery(central_config, smtp=smtp_settings(mail))
    _day(session_factory, config)
    Courier(config=config, session_factory=session_factory).tick(CUTOFF + timedelta(seconds=5))
    assert mail.messages == [] and mail.logins[0] == ("station", False)
    assert all("login refused" in (r.last_error or "") for r in _rows(session_factory))


def test_delivery_settings_are_checked_at_start_up(
    central_config: CentralConfig,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValidationError, match="smtp, http or both"):
        DeliveryConfig.model_validate({})
    with pytest.raises(ValidationError, match="needs starttls"):
        DeliveryConfig.model_validate(
            {
                "smtp": {
                    "host": "mail",
                    "sender": "a@b.cn",
                    "to": ["c@d.cn"],
                    "username": "u",
                    "password_env": "X",
                    "starttls": False,
                }
            }
        )
    monkeypatch.delenv("WW_BUREAU_TOKEN")
    config = with_delivery(
        central_config, http={"url": "http://127.0.0.1:9/", "token_env": "WW_BUREAU_TOKEN"}
    )
    with pytest.raises(ValueError, match="WW_BUREAU_TOKEN is not set"):
        Courier(config=config, session_factory=session_factory)


def test_running_central_delivers_when_its_cutoff_passes(
    central_config: CentralConfig,
    session_factory: sessionmaker[Session],
    bureau: BureauEndpoint,
) -> None:
    bureau.start()
    local = datetime.now(SH)
    config = with_delivery(central_config, http=http_settings(bureau))
    config = config.model_copy(
        update={"report": config.report.model_copy(update={"cutoff": f"{local:%H:%M}"})}
    )
    service = CentralService(config, serve_http=False)
    service.start()
    try:
        assert wait_for(lambda: len(bureau.filed) == 2, timeout_s=30)
    finally:
        service.stop()
    rows = _rows(session_factory)
    assert [(r.channel, r.state) for r in rows] == [("http", "delivered")] * 2
    assert {r.report_date for r in rows} == {local.date()}


def test_express_report_is_mailed_and_uploaded_inside_its_two_hours(
    central_config: CentralConfig,
    session_factory: sessionmaker[Session],
    mail: MailServer,
    bureau: BureauEndpoint,
) -> None:
    bureau.start()
    config = with_delivery(central_config, smtp=smtp_settings(mail), http=http_settings(bureau))
    ibis = make_event(
        captured_at=CUTOFF - timedelta(hours=6),
        kind="anomaly",
        rule="motionless_bird",
        severity="critical",
        species={"scientific_name": "Nipponia nippon", "chinese_name": "朱鹮", "confidence": 0.9},
    )
    confirmed = CUTOFF - timedelta(hours=5)
    with session_factory.begin() as session:
        crud.insert_event(session=session, payload=ibis, received_at=confirmed)
        review.decide(
            session=session,
            event_id=str(ibis.event_id),
            decision="confirmed",
            reviewer="wang",
            note="现场确认，2只死亡",
            at=confirmed,
            catalogue=config.species_catalogue,
        )
    courier = Courier(config=config, session_factory=session_factory)
    written_at = confirmed + timedelta(minutes=105)
    with session_factory.begin() as session:
        (written,) = express.tick(
            session=session,
            now=written_at,
            out_dir=config.report_dir / "express",
            tz=SH,
            config=config,
        )
    courier.tick(written_at + timedelta(seconds=5))
    (message,) = mail.messages
    assert str(message["Subject"]).startswith("【快报】长兴扬子鳄")
    files = _attachments(message)
    assert sorted(Path(n).suffix for n in files) == [".json", ".pdf"]
    printed = _pdf_text(next(v for k, v in files.items() if k.endswith(".pdf")))
    assert "陆生野生动物疫源疫病快报" in printed and "朱鹮" in printed and "现场确认" in printed
    key = f"wildwatch-express-{ibis.event_id}"
    assert str(message["Message-ID"]).strip() == f"<{key}@station.example.cn>"
    assert list(bureau.filed) == [key]
    assert bureau.filed[key].files[written.path.name] == written.path.read_bytes()
    rows = _rows(session_factory)
    assert {(r.kind, r.state) for r in rows} == {("express", "delivered")}
    assert all(r.delivered_at and r.delivered_at < confirmed + timedelta(hours=2) for r in rows)
    courier.tick(written_at + timedelta(minutes=5))
    assert len(mail.messages) == 1 and len(bureau.filed) == 1  # once


def test_draft_time_is_before_its_cutoff(central_config: CentralConfig, mail: MailServer) -> None:
    assert draft_time(central_config, DAY) == CUTOFF  # without delivery: no draft notice
    config = with_delivery(central_config, smtp=smtp_settings(mail))
    assert draft_time(config, DAY) == CUTOFF - timedelta(minutes=30)  # 14:30
    evening = with_delivery(central_config, smtp=smtp_settings(mail), draft_at="23:00")
    assert draft_time(evening, DAY) == CUTOFF - timedelta(hours=16)  # the evening before


def test_a_token_goes_over_https_unless_to_loopback() -> None:
    with pytest.raises(ValidationError, match="https only"):
        DeliveryConfig.model_validate(
            {"http": {"url": "http://bureau.example.cn/api", "token_env": "WW_BUREAU_TOKEN"}}
        )
    for url in ("https://bureau.example.cn/api", "http://127.0.0.1:8080/api"):
        DeliveryConfig.model_validate({"http": {"url": url, "token_env": "WW_BUREAU_TOKEN"}})


def test_a_site_whose_files_fail_does_not_hold_back_the_others(
    central_config: CentralConfig,
    session_factory: sessionmaker[Session],
    bureau: BureauEndpoint,
) -> None:
    bureau.start()
    config = with_delivery(central_config, http=http_settings(bureau))
    _day(session_factory, config)
    with session_factory.begin() as session:  # control characters and a formula in a record
        casebook.open_by_hand(
            session=session,
            data=casebook.CaseCreate(
                site="changxing",
                found_at=CUTOFF - timedelta(hours=1),
                location='=HYPERLINK("x")\x0b堤坝',
                judgement="疑似" * 990,  # longer than a printed cell may be: cut in the PDF only
            ),
            sites=set(config.sites),
            catalogue=config.species_catalogue,
            by="zhang",
            now=CUTOFF - timedelta(hours=1),
        )
    # xiazhuhu's outbox folder cannot be made: a file stands where it goes
    blocker = config.report_dir / OUTBOX / DAY.isoformat() / "xiazhuhu"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    Courier(config=config, session_factory=session_factory).tick(CUTOFF + timedelta(seconds=5))
    assert list(bureau.filed) == ["wildwatch-ZJ-HZ-CX-changxing-2026-11-22"]
    files = bureau.filed["wildwatch-ZJ-HZ-CX-changxing-2026-11-22"].files
    assert sorted(files) == [
        "daily_report_2026-11-22_changxing.json",
        "daily_report_2026-11-22_changxing.pdf",
        "daily_report_2026-11-22_changxing.xlsx",
    ]
    book = load_workbook(io.BytesIO(files["daily_report_2026-11-22_changxing.xlsx"]))
    location = next(
        r[3] for r in book["异常情况"].iter_rows(values_only=True) if r[1] != "编号 Case"
    )
    assert location == '\'=HYPERLINK("x")堤坝'  # text, not a formula; no control character
    assert "…" in _pdf_text(files["daily_report_2026-11-22_changxing.pdf"])
