"""The duty roster: shifts by kind of day (overnight ones too), holidays and make-up workdays,
overrides, the escalation chain at a moment, and the gaps nobody covers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from central import accounts, roster
from central.config import CentralConfig
from central.db.models import DutyShift
from central.roster import DayKind, DutyRole, Gap

TZ = ZoneInfo("Asia/Shanghai")


def local(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=TZ)


@pytest.fixture()
def session(
    session_factory: sessionmaker[Session], central_config: CentralConfig
) -> Iterator[Session]:
    """changxing: 王伟 on workdays 08-18, 李娜 every night 18-08, 张站长 backup and head."""
    with session_factory() as s:
        for name, shown, phone in [
            ("wang", "王伟", "13800000001"),
            ("li", "李娜", "13800000002"),
            ("zhang", "张站长", "13800000003"),
            ("nophone", "无号", None),
        ]:
            accounts.create_user(
                session=s,
                name=name,
                password="long enough pw",
                role=accounts.Role.STAFF,
                sites=["changxing"],
                known_sites=central_config.sites,
                display_name=shown,
                phone=phone,
                now=datetime.now(UTC),
            )
        roster.add_shift(
            session=s,
            site="changxing",
            role=DutyRole.DUTY,
            user_name="wang",
            day_kind=DayKind.WORKDAY,
            start=time(8),
            end=time(18),
        )
        roster.add_shift(
            session=s,
            site="changxing",
            role=DutyRole.DUTY,
            user_name="li",
            day_kind=DayKind.ANY,
            start=time(18),
            end=time(8),
        )
        for role in (DutyRole.BACKUP, DutyRole.HEAD):
            roster.add_shift(
                session=s,
                site="changxing",
                role=role,
                user_name="zhang",
                day_kind=DayKind.ANY,
                start=time(0),
                end=time(23, 59),
            )
        s.commit()
        yield s


def who(session: Session, at: datetime) -> list[tuple[str, str]]:
    return [
        (p.role.value, p.name)
        for p in roster.chain(session=session, site="changxing", at=at, tz=TZ)
    ]


def test_the_chain_follows_the_shifts(session: Session) -> None:
    wed = (2026, 12, 2)
    assert who(session, local(*wed, 10)) == [
        ("duty", "wang"),
        ("backup", "zhang"),
        ("head", "zhang"),
    ]
    assert who(session, local(*wed, 23))[0] == ("duty", "li")
    assert who(session, local(2026, 12, 3, 7, 59))[0] == ("duty", "li")  # Wednesday's night
    assert who(session, local(2026, 12, 3, 8))[0] == ("duty", "wang")
    chain = roster.chain(session=session, site="changxing", at=local(*wed, 10), tz=TZ)
    assert chain[0].display_name == "王伟" and chain[0].phone == "13800000001"
    assert roster.chain(session=session, site="xiazhuhu", at=local(*wed, 10), tz=TZ) == []


def test_weekends_holidays_and_make_up_workdays(session: Session) -> None:
    saturday = (2026, 12, 5)
    assert who(session, local(*saturday, 10))[0] != ("duty", "wang")  # nobody by day
    roster.mark_days(session=session, days=[date(*saturday)], kind=DayKind.WORKDAY)
    assert who(session, local(*saturday, 10))[0] == ("duty", "wang")  # a make-up workday
    monday = (2026, 12, 7)
    roster.mark_days(session=session, days=[date(*monday)], kind=DayKind.HOLIDAY)
    assert who(session, local(*monday, 10))[0] == ("backup", "zhang")  # no duty officer


def test_an_override_takes_the_role_for_its_span(session: Session) -> None:
    roster.add_override(
        session=session,
        site="changxing",
        role=DutyRole.DUTY,
        user_name="li",
        starts_at=local(2026, 12, 3, 0),
        ends_at=local(2026, 12, 6, 0),
        note="李娜替王伟 3-5 Dec",
    )
    assert who(session, local(2026, 12, 4, 10))[0] == ("duty", "li")
    assert who(session, local(2026, 12, 2, 10))[0] == ("duty", "wang")
    assert who(session, local(2026, 12, 7, 10))[0] == ("duty", "wang")


def test_gaps_are_the_spans_without_a_reachable_duty_officer(session: Session) -> None:
    found = roster.gaps(
        session=session,
        site="changxing",
        start=local(2026, 12, 4, 0),
        end=local(2026, 12, 8, 0),
        tz=TZ,
    )
    # the weekend's daytime (Sat and Sun 08-18) has no duty officer
    assert found == [
        Gap(local(2026, 12, 5, 8), local(2026, 12, 5, 18)),
        Gap(local(2026, 12, 6, 8), local(2026, 12, 6, 18)),
    ]
    assert roster.gaps(
        session=session,
        site="xiazhuhu",
        start=local(2026, 12, 4, 0),
        end=local(2026, 12, 4, 1),
        tz=TZ,
    ) == [Gap(local(2026, 12, 4, 0), local(2026, 12, 4, 1))]


def test_a_shift_that_cannot_reach_anyone_is_refused(session: Session) -> None:
    with pytest.raises(roster.RosterError, match="没有手机号"):
        roster.add_shift(
            session=session,
            site="changxing",
            role=DutyRole.DUTY,
            user_name="nophone",
            day_kind=DayKind.WEEKEND,
            start=time(8),
            end=time(18),
        )
    with pytest.raises(roster.RosterError, match="不属于站点"):
        roster.add_shift(
            session=session,
            site="xiazhuhu",
            role=DutyRole.DUTY,
            user_name="wang",
            day_kind=DayKind.WEEKEND,
            start=time(8),
            end=time(18),
        )
    with pytest.raises(roster.RosterError, match="无此用户"):
        roster.add_override(
            session=session,
            site="changxing",
            role=DutyRole.DUTY,
            user_name="ghost",
            starts_at=local(2026, 12, 3, 0),
            ends_at=local(2026, 12, 4, 0),
        )
    with pytest.raises(roster.RosterError, match="结束须晚于开始"):
        roster.add_override(
            session=session,
            site="changxing",
            role=DutyRole.DUTY,
            user_name="li",
            starts_at=local(2026, 12, 4, 0),
            ends_at=local(2026, 12, 3, 0),
        )


def test_gaps_are_exact_to_the_minute(session: Session) -> None:
    # 王伟's workday ends at 18:00; 李娜's night (her shifts gone) starts at 18:10 this Wednesday
    roster.add_override(
        session=session,
        site="changxing",
        role=DutyRole.DUTY,
        user_name="li",
        starts_at=local(2026, 12, 2, 18, 10),
        ends_at=local(2026, 12, 3, 8),
    )
    session.query(DutyShift).filter_by(user_name="li").delete()
    found = roster.gaps(
        session=session,
        site="changxing",
        start=local(2026, 12, 2, 17, 7),
        end=local(2026, 12, 2, 19, 3),
        tz=TZ,
    )
    assert found == [Gap(local(2026, 12, 2, 18, 0), local(2026, 12, 2, 18, 10))]
