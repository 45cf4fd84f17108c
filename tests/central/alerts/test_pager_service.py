"""The duty pager in the running service: an anomaly published over MQTT by a node pages the
duty officer on the roster through Tencent Cloud SMS (the real SDK against a local server), the
provider's receipt and the officer's reply ("1 <code>") come back through central's callback
endpoint, the alert is taken and the officer is told; with Tencent down, the file back-end
carries the message."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from broker.topics import event_topic
from broker.validate import encode
from central import accounts
from central.app import CentralService
from central.config import CentralConfig
from central.db.models import Alert
from tests.central.alerts.service import DUTY_PHONE, notifications, paging_service
from tests.central.conftest import EGRET, make_event
from tests.central.web.station import PASSWORD, add_people
from tests.helpers import free_port, wait_for
from tests.peers.tencent_sms import TencentSmsServer

KEY_ENV = "WILDWATCH_TEST_PAGER_TENCENT_KEY"
CALLBACK_ENV = "WILDWATCH_TEST_SMS_CALLBACK"
SECRET = "callback-secret-0123456789"


@pytest.fixture()
def tencent() -> Iterator[TencentSmsServer]:
    with TencentSmsServer(templates={"2001": 4, "2002": 2}) as srv:
        yield srv


def pager_config(
    central_config: CentralConfig, tencent: TencentSmsServer, tmp_path: Path
) -> CentralConfig:
    data: dict[str, Any] = central_config.model_dump(mode="json")
    data["http"]["port"] = free_port()
    data["alerts"].update(
        {
            "escalation": {"group_wait_s": 0},
            "callback_token_env": CALLBACK_ENV,
            "providers": [
                tencent.provider_config(KEY_ENV),
                {"type": "file", "path": str(tmp_path / "fallback-sms.jsonl")},
            ],
        }
    )
    return CentralConfig.model_validate(data)


@pytest.fixture()
def service(
    central_config: CentralConfig,
    tencent: TencentSmsServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[CentralService]:
    monkeypatch.setenv(KEY_ENV, tencent.secret_key)
    monkeypatch.setenv(CALLBACK_ENV, SECRET)
    with paging_service(pager_config(central_config, tencent, tmp_path)) as svc:
        yield svc


def url(svc: CentralService, kind: str, secret: str = SECRET) -> str:
    return f"http://127.0.0.1:{svc.config.http.port}/api/sms/tencent/{secret}/{kind}"


def test_an_anomaly_pages_the_duty_officer_who_takes_it_by_reply(
    service: CentralService,
    tencent: TencentSmsServer,
    publisher: Callable[[str, bytes], None],
) -> None:
    for seq in (1, 2, 3):  # three dead egrets: one alert, one message
        event = make_event(
            seq=seq,
            kind="anomaly",
            rule="motionless_bird",
            severity="alert",
            species=EGRET,
            message_zh="发现白鹭疑似死亡",
        )
        publisher(event_topic("changxing", "cx-01"), encode(event))
    assert wait_for(lambda: service.stored_events() == 3, 15)
    assert wait_for(lambda: [n.state for n in notifications(service)] == ["submitted"], 15)
    [sms] = tencent.sent
    assert sms.phone == "+86" + DUTY_PHONE and sms.template_id == "2001"
    site, what, count, code = sms.params
    # the count is what the alert held when the first message went (the loop runs every
    # second, the three events arrive within it or just after): never a message per bird
    assert site.startswith("长兴") and what.startswith("发现白鹭") and count in "123"
    assert len(code) == 4
    # the delivery receipt, pushed by Tencent; a second push of it changes nothing
    tencent.mark_delivered(sms.serial_no)
    for _ in range(2):
        status, body = tencent.post_status_callback(url(service, "report"), [sms.serial_no])
        assert status == 200 and json.loads(body) == {"result": 0, "errmsg": "OK"}
    assert notifications(service)[0].state == "delivered"
    # a wrong secret is no endpoint at all
    status, _ = tencent.post_status_callback(url(service, "report", "wrong"), [sms.serial_no])
    assert status == 404
    # the duty officer replies with the code
    status, _ = tencent.post_reply_callback(url(service, "reply"), DUTY_PHONE, f"1 {code}")
    assert status == 200
    assert service.session_factory is not None
    with service.session_factory() as session:
        alert = session.scalars(sa.select(Alert)).one()
        assert alert.state == "acknowledged" and alert.acked_by == "王伟"  # by the phone
    # the only person paged took it: nobody is to be told (the console test covers the notice)
    assert [n.template for n in notifications(service)] == ["alert"]


def test_with_tencent_down_the_file_carries_the_message(
    service: CentralService,
    tencent: TencentSmsServer,
    publisher: Callable[[str, bytes], None],
    tmp_path: Path,
) -> None:
    tencent.fail_next(5, code="InternalError")
    event = make_event(
        kind="anomaly",
        rule="free_roaming_dog",
        category="dog",
        severity="critical",
        message_zh="游荡犬进入保护区",
    )
    publisher(event_topic("changxing", "cx-01"), encode(event))
    assert wait_for(lambda: [n.provider for n in notifications(service)] == ["file"], 15)
    line = json.loads((tmp_path / "fallback-sms.jsonl").read_text(encoding="utf-8"))
    assert line["phone"] == DUTY_PHONE and "游荡犬" in line["text"] and "回复 1 " in line["text"]
    assert tencent.sent == []


def test_the_console_shows_the_messages_and_takes_the_alert(
    service: CentralService,
    tencent: TencentSmsServer,
    publisher: Callable[[str, bytes], None],
) -> None:
    assert service.session_factory is not None
    with service.session_factory.begin() as session:
        add_people(
            session,
            {"zhang": (accounts.Role.HEAD, ["changxing"], "张站长")},
            known_sites=service.config.sites,
        )
    event = make_event(
        kind="anomaly",
        rule="motionless_bird",
        severity="alert",
        species=EGRET,
        message_zh="发现白鹭疑似死亡",
    )
    publisher(event_topic("changxing", "cx-01"), encode(event))
    assert wait_for(lambda: [n.state for n in notifications(service)] == ["submitted"], 15)
    base = f"http://127.0.0.1:{service.config.http.port}"
    with httpx.Client(base_url=base, follow_redirects=True) as client:
        page = client.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        client.post(
            "/login",
            data={"name": "zhang", "password": PASSWORD, "csrf_token": csrf.group(1)},
        )
        page = client.get("/alerts")
        assert "已通知 notified" in page.text and "已提交 submitted" in page.text
        assert "tencent" in page.text and DUTY_PHONE in page.text
        alert_id = re.search(r'action="/alerts/(\d+)/ack"', page.text)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert alert_id is not None and csrf is not None
        r = client.post(f"/alerts/{alert_id.group(1)}/ack", data={"csrf_token": csrf.group(1)})
        assert r.status_code == 200 and "已接警 Taken by <b>张站长</b>" in r.text
        r = client.post(f"/alerts/{alert_id.group(1)}/ack", data={"csrf_token": csrf.group(1)})
        assert r.status_code == 409  # once
    assert wait_for(lambda: len(tencent.sent) == 2, 15)  # the duty officer hears who took it
    notice = tencent.sent[1]
    assert notice.template_id == "2002" and notice.params[0] == "张站长"


def test_the_callback_secret_stays_out_of_the_access_log(service: CentralService) -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", f"/api/sms/tencent/{SECRET}/report", "1.1", 200),
        None,
    )
    filters = logging.getLogger("uvicorn.access").filters  # installed by the app
    assert filters
    for f in filters:
        if isinstance(f, logging.Filter):
            f.filter(record)
    assert (
        SECRET not in record.getMessage() and "/api/sms/tencent/***/report" in record.getMessage()
    )
    too_big = httpx.post(url(service, "report"), content=b"[" + b" " * (1 << 20) + b"]")
    assert too_big.status_code == 413
