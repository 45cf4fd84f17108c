"""The alert lifecycle on a driven clock: grouping, escalation along the roster, repeat,
acknowledgement by SMS reply code, daytime-only warnings, silences."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import EventPayload, Severity
from central import accounts, alerting
from central.alerting import AlertState
from central.alerts.policy import EscalationConfig
from central.config import CentralConfig
from central.db.models import Alert, AlertNotification, DutyShift, Silence
from central.roster import DutyRole
from tests.central.conftest import EGRET, make_event, on_duty_all_day

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 12, 2, 10, 0, tzinfo=TZ)  # a Wednesday, daytime
CONFIG = EscalationConfig()
PEOPLE = {DutyRole.DUTY: "wang", DutyRole.BACKUP: "li", DutyRole.HEAD: "zhang"}


@pytest.fixture()
def session(
    session_factory: sessionmaker[Session], central_config: CentralConfig
) -> Iterator[Session]:
    """changxing's roster around the clock: 王伟 duty, 李娜 backup, 张站长 head."""
    with session_factory() as s:
        for i, (role, name) in enumerate(PEOPLE.items()):
            accounts.create_user(
                session=s,
                name=name,
                password="long enough pw",
                role=accounts.Role.STAFF,
                sites=["changxing"],
                known_sites=central_config.sites,
                phone=f"1380000000{i}",
                now=datetime.now(UTC),
            )
            on_duty_all_day(s, user_name=name, role=role)
        s.commit()
        yield s


def death(at: datetime, **overrides: Any) -> EventPayload:
    data: dict[str, Any] = {
        "kind": "anomaly",
        "rule": "motionless_bird",
        "severity": "alert",
        "captured_at": at,
        "species": EGRET,
    }
    data.update(overrides)
    return make_event(**data)


def tick(session: Session, at: datetime) -> list[tuple[str, int, int]]:
    made = alerting.tick(session=session, config=CONFIG, now=at, tz=TZ)
    session.flush()
    return [(n.user_name, n.step, n.round) for n in made]


def test_ten_dead_birds_in_ten_minutes_are_one_alert_that_pages_once(session: Session) -> None:
    for minute in range(10):
        at = T0 + timedelta(minutes=minute)
        decision = alerting.observe(session=session, event=death(at), config=CONFIG, now=at)
        assert decision is not None and decision.new == (minute == 0)
        if minute == 0:
            assert tick(session, at + timedelta(seconds=CONFIG.group_wait_s)) == [("wang", 0, 0)]
    alert = session.query(Alert).one()
    assert alert.event_count == 10 and alert.state == AlertState.NOTIFIED
    # later birds joined the alert: nobody is paged again for them
    assert tick(session, T0 + timedelta(minutes=9, seconds=59)) == []
    assert session.query(AlertNotification).count() == 1


def test_no_acknowledgement_walks_the_chain_then_repeats_it(session: Session) -> None:
    alerting.observe(session=session, event=death(T0), config=CONFIG, now=T0)
    start = T0 + timedelta(seconds=30)
    assert tick(session, start) == [("wang", 0, 0)]
    assert tick(session, start + timedelta(seconds=599)) == []
    assert tick(session, start + timedelta(seconds=600)) == [("li", 1, 0)]
    assert tick(session, start + timedelta(seconds=1200)) == [("zhang", 2, 0)]
    # severity alert repeats the chain once, an hour later, then stops
    again = start + timedelta(seconds=1200 + 3600)
    assert tick(session, again) == [("wang", 0, 1)]
    assert tick(session, again + timedelta(seconds=600)) == [("li", 1, 1)]
    assert tick(session, again + timedelta(seconds=1200)) == [("zhang", 2, 1)]
    assert tick(session, again + timedelta(days=1)) == []


def test_a_reply_with_the_code_stops_the_escalation(session: Session) -> None:
    alerting.observe(session=session, event=death(T0), config=CONFIG, now=T0)
    tick(session, T0 + timedelta(seconds=30))
    tick(session, T0 + timedelta(seconds=630))  # the backup was told too
    for row in session.query(AlertNotification):
        row.state = "submitted"  # as the sender leaves them
    tick(session, T0 + timedelta(seconds=1230))  # the head's message is still pending
    alert = session.query(Alert).one()
    code = alerting.parse_reply(f"1 {alert.ack_code}")
    assert code == alert.ack_code
    at = T0 + timedelta(minutes=21)
    # a number the alert never paged cannot take it with the code
    assert (
        alerting.acknowledge(session=session, code=code, phone="13999999999", by="x", now=at)
        is None
    )
    taken = alerting.acknowledge(
        session=session, code=code, phone="+8613800000000", by="王伟", now=at
    )
    # the backup hears who took it; the acknowledger is not told their own news
    assert taken is not None and list(taken.notify) == ["13800000001"]
    assert alert.state == AlertState.ACKNOWLEDGED and alert.acked_by == "王伟"
    head = session.query(AlertNotification).filter_by(user_name="zhang").one()
    assert head.state == "cancelled"  # not sent after the alert was taken
    assert tick(session, T0 + timedelta(days=1)) == []  # nobody else is woken
    assert (
        alerting.acknowledge(session=session, code=code, phone="13800000000", by="x", now=at)
        is None
    )  # once


def test_the_console_takes_an_alert_by_its_id(session: Session) -> None:
    decision = alerting.observe(session=session, event=death(T0), config=CONFIG, now=T0)
    assert decision is not None
    taken = alerting.acknowledge(session=session, alert_id=decision.alert_id, by="张站长", now=T0)
    assert taken is not None and taken.alert_id == decision.alert_id
    with pytest.raises(ValueError):
        alerting.acknowledge(session=session, code="1234", by="x", now=T0)  # no phone


def test_who_takes_it_on_the_console_is_not_told_they_did(session: Session) -> None:
    alerting.observe(session=session, event=death(T0), config=CONFIG, now=T0)
    start = T0 + timedelta(seconds=30)
    tick(session, start)
    tick(session, start + timedelta(seconds=600))  # wang, then li
    for n in session.query(AlertNotification):
        n.state = "submitted"
    alert = session.query(Alert).one()
    taken = alerting.acknowledge(
        session=session,
        alert_id=alert.id,
        by="李娜",
        own_phone="13800000001",
        now=start + timedelta(seconds=700),
    )
    assert taken is not None and list(taken.notify) == ["13800000000"]  # wang only


def test_a_warning_that_turns_critical_pages_at_once(session: Session) -> None:
    night = datetime(2026, 12, 2, 23, 0, tzinfo=TZ)
    warn = death(night, severity="warning")
    alerting.observe(session=session, event=warn, config=CONFIG, now=night)
    assert tick(session, night + timedelta(minutes=1)) == []  # held for the morning
    later = night + timedelta(minutes=10)
    alerting.observe(
        session=session, event=death(later, severity="critical"), config=CONFIG, now=later
    )
    assert tick(session, later) == [("wang", 0, 0)]  # critical waits for nothing


def test_critical_pages_at_once_and_alert_waits_for_more_of_the_same(session: Session) -> None:
    alerting.observe(session=session, event=death(T0, severity="critical"), config=CONFIG, now=T0)
    alerting.observe(
        session=session,
        event=death(T0, rule="free_roaming_dog", species=None),
        config=CONFIG,
        now=T0,
    )
    assert tick(session, T0) == [("wang", 0, 0)]  # the critical one
    assert tick(session, T0 + timedelta(seconds=29)) == []
    assert tick(session, T0 + timedelta(seconds=30)) == [("wang", 0, 0)]  # the alert one
    # a policy may set its own wait; one without takes the escalation's
    config = EscalationConfig.model_validate(
        {"group_wait_s": 5, "policies": {"alert": {"steps": [{"role": "duty", "after_s": 0}]}}}
    )
    assert config.group_wait(Severity.ALERT) == 5 and CONFIG.group_wait(Severity.CRITICAL) == 0


def test_a_step_nobody_holds_is_skipped_at_once(
    session: Session, central_config: CentralConfig
) -> None:
    session.query(DutyShift).filter_by(role="duty").delete()  # no duty officer today
    alerting.observe(session=session, event=death(T0), config=CONFIG, now=T0)
    assert tick(session, T0 + timedelta(seconds=30)) == [("li", 1, 0)]  # the backup, now


def test_an_alert_whose_policy_is_gone_still_pages(session: Session) -> None:
    alerting.observe(session=session, event=death(T0), config=CONFIG, now=T0)
    only_critical = EscalationConfig(
        policies={Severity.CRITICAL: CONFIG.policies[Severity.CRITICAL]}
    )
    made = alerting.tick(
        session=session, config=only_critical, now=T0 + timedelta(seconds=30), tz=TZ
    )
    assert [n.user_name for n in made] == ["wang"]  # the nearest stricter policy


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("1 3527", "3527"),
        ("1,3527", "3527"),
        ("１ ３５２７", "3527"),
        ("3527", "3527"),
        ("1，3527", "3527"),
        ("收到", None),
        ("1 35", None),
        ("2 3527 x", None),
    ],
)
def test_reply_codes(text: str, code: str | None) -> None:
    assert alerting.parse_reply(text) == code


def test_a_warning_at_night_waits_for_the_morning(session: Session) -> None:
    night = datetime(2026, 12, 2, 23, 0, tzinfo=TZ)
    event = death(night, rule="abnormal_count", severity="warning")
    alerting.observe(session=session, event=event, config=CONFIG, now=night)
    assert tick(session, night + timedelta(minutes=1)) == []
    alert = session.query(Alert).one()
    assert alert.next_action_at == datetime(2026, 12, 3, 8, 0, tzinfo=TZ)
    assert tick(session, datetime(2026, 12, 3, 8, 0, tzinfo=TZ)) == [("wang", 0, 0)]
    assert tick(session, datetime(2026, 12, 4, 8, 0, tzinfo=TZ)) == []  # warning: duty only


def test_incidents_are_kept_apart(session: Session) -> None:
    heron = {"scientific_name": "Ardea cinerea", "chinese_name": "苍鹭", "confidence": 0.8}
    a = alerting.observe(session=session, event=death(T0), config=CONFIG, now=T0)
    b = alerting.observe(session=session, event=death(T0, species=heron), config=CONFIG, now=T0)
    c = alerting.observe(session=session, event=death(T0, site="xiazhuhu"), config=CONFIG, now=T0)
    later = T0 + timedelta(seconds=CONFIG.group_interval_s + 1)
    d = alerting.observe(session=session, event=death(later), config=CONFIG, now=later)
    assert a and b and c and d
    assert len({a.alert_id, b.alert_id, c.alert_id, d.alert_id}) == 4
    obs = make_event()  # an observation pages nobody
    assert alerting.observe(session=session, event=obs, config=CONFIG, now=T0) is None


def test_a_worse_event_raises_the_alert(session: Session) -> None:
    alerting.observe(session=session, event=death(T0, severity="warning"), config=CONFIG, now=T0)
    alerting.observe(
        session=session,
        event=death(T0, severity="critical"),
        config=CONFIG,
        now=T0 + timedelta(seconds=5),
    )
    assert session.query(Alert).one().severity == "critical"


def test_a_silenced_site_pages_nobody(session: Session) -> None:
    session.add(
        Silence(
            site="changxing",
            camera="cam1",
            starts_at=T0 - timedelta(hours=1),
            ends_at=T0 + timedelta(hours=1),
            created_by="zhang",
            reason="检修",
        )
    )
    decision = alerting.observe(session=session, event=death(T0), config=CONFIG, now=T0)
    assert decision is not None and decision.state == AlertState.SILENCED
    assert tick(session, T0 + timedelta(minutes=5)) == []
    # the same incident seen by a camera under no maintenance is real after all
    at = T0 + timedelta(minutes=6)
    other = alerting.observe(session=session, event=death(at, camera="cam2"), config=CONFIG, now=at)
    assert other is not None and other.alert_id == decision.alert_id
    assert other.state == AlertState.TRIGGERED
    assert tick(session, at + timedelta(seconds=30)) == [("wang", 0, 0)]


def test_two_workers_seeing_one_incident_at_once_open_one_alert(
    session: Session, session_factory: sessionmaker[Session], database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer; the lock is PostgreSQL's")
    session.commit()  # the roster the fixture made
    first = session_factory()
    alerting.observe(session=first, event=death(T0), config=CONFIG, now=T0)
    first.flush()  # worker 1 opened the alert and has not committed yet
    done = threading.Event()

    def worker_two() -> None:
        with session_factory.begin() as second:
            alerting.observe(session=second, event=death(T0), config=CONFIG, now=T0)
        done.set()

    thread = threading.Thread(target=worker_two)
    thread.start()
    assert not done.wait(0.5)  # waits for worker 1's transaction
    first.commit()
    first.close()
    thread.join(10)
    assert done.is_set()
    session.expire_all()
    alert = session.query(Alert).one()  # worker 2 joined the alert worker 1 opened
    assert alert.event_count == 2 * death(T0).count
