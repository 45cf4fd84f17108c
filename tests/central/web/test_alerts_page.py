"""告警 page: staff set a maintenance window (维护静默) in which a new incident pages nobody, end
it early, and close an alert (结束) so that what was still to be sent is not."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import EventPayload
from central import alerting
from central.alerts.policy import EscalationConfig
from central.db.models import Alert, AlertNotification, Silence, User
from central.roster import DutyRole
from tests.central.conftest import EGRET, make_event, on_duty_all_day

Login = Callable[[str], tuple[TestClient, str]]
TZ = ZoneInfo("Asia/Shanghai")


def local(at: datetime) -> str:
    """As a datetime-local field sends it (station time, no offset)."""
    return at.astimezone(TZ).strftime("%Y-%m-%dT%H:%M")


def window(client: TestClient, csrf: str, **fields: str) -> int:
    now = datetime.now(UTC)
    data = {
        "site": "changxing",
        "camera": "cam1",
        "starts_at": local(now - timedelta(minutes=1)),
        "ends_at": local(now + timedelta(hours=2)),
        "reason": "更换电池 battery change",
        "csrf_token": csrf,
        **fields,
    }
    status: int = client.post("/alerts/silences", data=data, follow_redirects=False).status_code
    return status


def dead_egret(camera: str) -> EventPayload:
    return make_event(
        kind="anomaly",
        rule="motionless_bird",
        severity="alert",
        species=EGRET,
        camera=camera,
        message_zh="发现白鹭疑似死亡",
    )


def test_a_maintenance_window_keeps_its_camera_quiet_until_ended(
    login: Login, session_factory: sessionmaker[Session]
) -> None:
    client, csrf = login("wang")
    assert window(client, csrf) == 303
    page = client.get("/alerts").text
    assert "维护静默" in page and "更换电池" in page and "cam1" in page
    with session_factory.begin() as session:
        decision = alerting.observe(
            session=session,
            event=dead_egret("cam1"),
            config=EscalationConfig(),
            now=datetime.now(UTC),
        )
        assert decision is not None and decision.state == alerting.AlertState.SILENCED
        [silence] = session.scalars(sa.select(Silence)).all()
        assert silence.created_by == "wang" and silence.camera == "cam1"
    r = client.post(
        f"/alerts/silences/{silence.id}/end", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    assert "更换电池" not in client.get("/alerts").text
    r = client.post(f"/alerts/silences/{silence.id}/end", data={"csrf_token": csrf})
    assert r.status_code == 409  # over already


def test_a_window_that_cannot_be_kept_is_refused_with_the_reason(login: Login) -> None:
    client, csrf = login("wang")
    now = datetime.now(UTC)
    r = client.post(
        "/alerts/silences",
        data={
            "site": "changxing",
            "starts_at": local(now + timedelta(hours=2)),
            "ends_at": local(now + timedelta(hours=1)),
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 422 and "结束时间须晚于开始时间" in r.text
    assert window(client, csrf, ends_at=local(now + timedelta(days=20))) == 422  # 14 days at most
    assert window(client, csrf, site="xiazhuhu") == 404  # not wang's site
    assert window(client, "wrong-token") == 403
    other, other_csrf = login("sheng")  # the bureau reads, does not keep the stations' windows
    assert window(other, other_csrf) == 403


def test_closing_an_alert_cancels_what_was_still_to_be_sent(
    login: Login, session_factory: sessionmaker[Session]
) -> None:
    now = datetime.now(UTC)
    with session_factory.begin() as session:
        session.scalars(sa.select(User).where(User.name == "wang")).one().phone = "13800000001"
        session.flush()
        on_duty_all_day(session, user_name="wang", role=DutyRole.DUTY)
        decision = alerting.observe(
            session=session,
            event=dead_egret("cam2"),
            config=EscalationConfig(),
            now=now,
        )
        assert decision is not None
        made = alerting.tick(
            session=session, config=EscalationConfig(), now=now + timedelta(seconds=30), tz=TZ
        )
        assert len(made) == 1  # the duty officer's message, not sent yet
    client, csrf = login("zhang")
    page = client.get("/alerts").text
    assert f'action="/alerts/{decision.alert_id}/resolve"' in page
    r = client.post(
        f"/alerts/{decision.alert_id}/resolve", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    with session_factory() as session:
        alert = session.get(Alert, decision.alert_id)
        assert alert is not None and alert.state == "resolved" and alert.next_action_at is None
        [row] = session.scalars(sa.select(AlertNotification)).all()
        assert row.state == "cancelled" and row.code == "resolved"
    r = client.post(f"/alerts/{decision.alert_id}/resolve", data={"csrf_token": csrf})
    assert r.status_code == 409
    lee, lee_csrf = login("li")  # another site's alert is no alert at all to li
    assert (
        lee.post(f"/alerts/{decision.alert_id}/resolve", data={"csrf_token": lee_csrf}).status_code
        == 404
    )
