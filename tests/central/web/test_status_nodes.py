"""The 站点与设备 page shows, from each node's heartbeat, the model release it runs (and one it
refused), its 4G uplink recovery steps, its clock offset and its storage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import HeartbeatPayload, LinkHealth
from central import crud

Login = Callable[[str], tuple[TestClient, str]]
NOW = datetime.now(UTC)


def _beat(node: str, **fields: Any) -> HeartbeatPayload:
    values: dict[str, Any] = {"uptime_s": 5, "outbox_depth": 0, "software_version": "0.1.0"}
    return HeartbeatPayload(site="changxing", node=node, sent_at=NOW, **{**values, **fields})


def _status_page(
    login: Login, session_factory: sessionmaker[Session], beats: list[HeartbeatPayload]
) -> dict[str, str]:
    """Record the heartbeats, open the page as staff; each node's part of the page."""
    with session_factory.begin() as session:
        for beat in beats:
            crud.record_heartbeat(session=session, payload=beat, received_at=NOW)
    client, _ = login("wang")
    html = client.get("/status").text
    parts = {}
    for beat in beats:
        part = html[html.index(f'id="node-changxing-{beat.node}"') :]
        parts[beat.node] = part[: part.index("</article>")]
    return parts


def test_status_shows_each_nodes_release_and_a_refused_one(
    login: Login, session_factory: sessionmaker[Session]
) -> None:
    error = "2026.12.03-1: 签名校验失败 / signature <check> failed"
    page = _status_page(
        login,
        session_factory,
        [
            _beat("cx-01", release="2026.12.03-1"),
            _beat("cx-02", release="2026.12.01-1", release_error=error),
        ],
    )
    assert "2026.12.03-1" in page["cx-01"] and "update refused" not in page["cx-01"]
    assert "2026.12.01-1" in page["cx-02"]
    assert "更新未采用 update refused: 2026.12.03-1: 签名校验失败" in page["cx-02"]
    assert "&lt;check&gt;" in page["cx-02"] and "<check>" not in page["cx-02"]  # escaped


def test_status_shows_uplink_steps_clock_offset_and_storage(
    login: Login, session_factory: sessionmaker[Session]
) -> None:
    down = LinkHealth(
        offline_s=1800,
        last_outage_s=4200,
        modem_resets=2,
        reboots=1,
        last_action="modem reset: exit 0 (offline 1800 s)",
        last_action_at=NOW,
    )
    page = _status_page(
        login,
        session_factory,
        [
            _beat(
                "cx-01",
                link=LinkHealth(),
                clock_offset_ms=12.4,
                storage_used_mb=1234.5,
                storage_cap_mb=8000,
            ),
            _beat("cx-02", outbox_depth=7, link=down, clock_offset_ms=-3500),
        ],
    )
    cx01, cx02 = page["cx-01"], page["cx-02"]
    assert "正常 up · 重置网卡 modem resets 0 · 重启 reboots 0" in cx01
    assert "+12 ms" in cx01 and "1234 / 8000 MB" in cx01
    assert "last step" not in cx01 and "last outage" not in cx01
    assert '<b class="warn">离线 offline 30 min</b> · 上次中断 last outage 70 min' in cx02
    assert "modem resets 2 · 重启 reboots 1" in cx02
    assert "最近处理 last step: modem reset: exit 0 (offline 1800 s)" in cx02
    assert '<b class="warn">-3500 ms</b>' in cx02  # a clock off by seconds stands out
