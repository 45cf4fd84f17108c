"""The 站点与设备 page shows each node's uplink recovery steps, clock offset and storage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import HeartbeatPayload, LinkHealth
from central import crud

Login = Callable[[str], tuple[TestClient, str]]


def _article(html: str, node: str) -> str:
    part = html[html.index(f'id="node-changxing-{node}"') :]
    return part[: part.index("</article>")]


def test_status_shows_uplink_steps_clock_offset_and_storage(
    login: Login, session_factory: sessionmaker[Session]
) -> None:
    now = datetime.now(UTC)
    beats = [
        HeartbeatPayload(
            site="changxing",
            node="cx-01",
            sent_at=now,
            uptime_s=5,
            outbox_depth=0,
            software_version="0.1.0",
            link=LinkHealth(),
            clock_offset_ms=12.4,
            storage_used_mb=1234.5,
            storage_cap_mb=8000,
        ),
        HeartbeatPayload(
            site="changxing",
            node="cx-02",
            sent_at=now,
            uptime_s=5,
            outbox_depth=7,
            software_version="0.1.0",
            link=LinkHealth(
                offline_s=1800,
                last_outage_s=4200,
                modem_resets=2,
                reboots=1,
                last_action="modem reset: exit 0 (offline 1800 s)",
                last_action_at=now,
            ),
            clock_offset_ms=-3500,
        ),
    ]
    with session_factory.begin() as session:
        for beat in beats:
            crud.record_heartbeat(session=session, payload=beat, received_at=now)
    client, _ = login("wang")
    html = client.get("/status").text
    cx01, cx02 = _article(html, "cx-01"), _article(html, "cx-02")
    assert "正常 up · 重置网卡 modem resets 0 · 重启 reboots 0" in cx01
    assert "+12 ms" in cx01 and "1234 / 8000 MB" in cx01 and "last step" not in cx01
    assert '<b class="warn">离线 offline 30 min</b> · 上次中断 last outage 70 min' in cx02
    assert "last outage" not in cx01
    assert "modem resets 2 · 重启 reboots 1" in cx02
    assert "最近处理 last step: modem reset: exit 0 (offline 1800 s)" in cx02
    assert '<b class="warn">-3500 ms</b>' in cx02  # a clock off by seconds stands out
