"""The 站点与设备 page shows the model release each node runs and a release it refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import HeartbeatPayload
from central import crud

Login = Callable[[str], tuple[TestClient, str]]


def test_status_shows_each_nodes_release_and_a_refused_one(
    login: Login, session_factory: sessionmaker[Session]
) -> None:
    now = datetime.now(UTC)
    beats = [
        HeartbeatPayload(
            site="changxing",
            node=node,
            sent_at=now,
            uptime_s=5,
            outbox_depth=0,
            software_version="0.1.0",
            release=release,
            release_error=error,
        )
        for node, release, error in [
            ("cx-01", "2026.12.03-1", None),
            ("cx-02", "2026.12.01-1", "2026.12.03-1: 签名校验失败 / signature <check> failed"),
        ]
    ]
    with session_factory.begin() as session:
        for beat in beats:
            crud.record_heartbeat(session=session, payload=beat, received_at=now)
    client, _ = login("wang")
    html = client.get("/status").text
    cx01 = html[html.index('id="node-changxing-cx-01"') :]
    cx01 = cx01[: cx01.index("</article>")]
    assert "2026.12.03-1" in cx01 and "update refused" not in cx01
    cx02 = html[html.index('id="node-changxing-cx-02"') :]
    cx02 = cx02[: cx02.index("</article>")]
    assert "2026.12.01-1" in cx02
    assert "更新未采用 update refused: 2026.12.03-1: 签名校验失败" in cx02
    assert "&lt;check&gt;" in cx02 and "<check>" not in cx02  # node text is escaped
