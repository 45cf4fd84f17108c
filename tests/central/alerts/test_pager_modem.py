"""A station without internet: the running service pages the duty officer through a GSM modem
(a pseudo-terminal speaking AT commands), settles the message by the modem's status report,
takes the alert when the officer replies "1 <code>" to the modem's number, and when the modem
is unplugged the file back-end carries the next alert until the modem is back, then the modem
is opened again on its own."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from broker.topics import event_topic
from broker.validate import encode
from central.app import CentralService
from central.config import CentralConfig
from central.db.models import Alert
from tests.central.alerts.service import DUTY_PHONE, notifications, paging_service
from tests.central.conftest import EGRET, make_event
from tests.central.web.station import PASSWORD
from tests.helpers import free_port, wait_for
from tests.peers.fake_modem import FakeModem


def plug(fake: FakeModem, link: Path) -> None:
    """The modem appears under its stable name (as udev's /dev/serial/by-id link does)."""
    tmp = link.with_suffix(".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(fake.path)
    os.replace(tmp, link)


@pytest.fixture()
def modem(tmp_path: Path) -> Iterator[FakeModem]:
    with FakeModem() as fake:
        plug(fake, tmp_path / "ttyModem")
        yield fake


@pytest.fixture()
def service(
    central_config: CentralConfig, modem: FakeModem, tmp_path: Path
) -> Iterator[CentralService]:
    data: dict[str, Any] = central_config.model_dump(mode="json")
    data["http"]["port"] = free_port()
    data["alerts"].update(
        {
            "escalation": {"group_wait_s": 0},
            "providers": [
                {
                    "type": "modem",
                    "port": str(tmp_path / "ttyModem"),
                    "timeout_s": 3,
                    "send_timeout_s": 3,
                    "reopen_every_s": 0.5,
                },
                {"type": "file", "path": str(tmp_path / "fallback-sms.jsonl")},
            ],
        }
    )
    with paging_service(CentralConfig.model_validate(data)) as svc:
        yield svc


def status_page(svc: CentralService) -> str:
    """The status page as the staff member wang sees it."""
    with httpx.Client(
        base_url=f"http://127.0.0.1:{svc.config.http.port}", follow_redirects=True
    ) as client:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert csrf is not None
        client.post("/login", data={"name": "wang", "password": PASSWORD, "csrf_token": csrf[1]})
        page = client.get("/status")
        assert page.status_code == 200 and "站点与设备" in page.text
        return page.text


def anomaly(seq: int, rule: str, message_zh: str, **fields: Any) -> bytes:
    return encode(
        make_event(
            seq=seq, kind="anomaly", rule=rule, severity="critical", message_zh=message_zh, **fields
        )
    )


def test_the_modem_pages_settles_and_takes_the_reply(
    service: CentralService, modem: FakeModem, publisher: Callable[[str, bytes], None]
) -> None:
    modem.wait_command("AT+CNMI")  # opened by the service at start
    publisher(
        event_topic("changxing", "cx-01"),
        anomaly(1, "motionless_bird", "发现白鹭疑似死亡", species=EGRET),
    )
    [sent] = modem.wait_sent(1, timeout_s=15)
    assert sent.number.endswith(DUTY_PHONE) and sent.srr  # a status report was asked for
    [(_, text)] = modem.messages()
    assert "白鹭" in text
    found = re.search(r"回复 1 (\d+)", text)
    assert found is not None
    code = found[1]
    assert wait_for(lambda: [n.state for n in notifications(service)] == ["submitted"], 10)
    [row] = notifications(service)
    assert row.provider == "modem" and row.message_id == str(sent.mr)
    modem.status_report(sent.mr, 0x00)  # the network delivered it
    assert wait_for(lambda: notifications(service)[0].state == "delivered", 10)
    modem.receive(DUTY_PHONE, f"1 {code}")  # the officer's reply reaches the SIM
    assert service.session_factory is not None

    def taken() -> Alert:
        assert service.session_factory is not None
        with service.session_factory() as session:
            return session.scalars(sa.select(Alert)).one()

    assert wait_for(lambda: taken().state == "acknowledged", 10)
    assert taken().acked_by == "王伟"
    assert 1 not in modem.storage  # read and deleted from the SIM


def test_an_unplugged_modem_fails_over_and_is_opened_again_when_back(
    service: CentralService,
    modem: FakeModem,
    publisher: Callable[[str, bytes], None],
    tmp_path: Path,
) -> None:
    modem.wait_command("AT+CNMI")
    pager = service.pager
    assert pager is not None
    modem.close()  # unplugged
    assert wait_for(lambda: not pager.devices[0].alive, 5)
    publisher(event_topic("changxing", "cx-01"), anomaly(1, "free_roaming_dog", "游荡犬进入保护区"))
    assert wait_for(lambda: [n.provider for n in notifications(service)] == ["file"], 15)
    assert "游荡犬" in (tmp_path / "fallback-sms.jsonl").read_text(encoding="utf-8")
    assert "短信猫未连接" in status_page(service)  # the station sees it
    with FakeModem() as back:  # plugged in again: a new device node behind the same name
        plug(back, tmp_path / "ttyModem")
        back.wait_command("AT+CNMI", timeout_s=10)
        assert wait_for(lambda: pager.devices[0].alive and pager.device_opens == 1, 5)
        assert "短信猫未连接" not in status_page(service)
        publisher(event_topic("changxing", "cx-01"), anomaly(2, "night_intrusion", "夜间人员闯入"))
        assert len(back.wait_sent(1, timeout_s=15)) == 1
        assert "夜间人员闯入" in back.messages()[0][1]
        assert wait_for(
            lambda: [n.provider for n in notifications(service)] == ["file", "modem"], 10
        )
