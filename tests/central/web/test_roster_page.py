"""值班表: the head keeps their site's roster in the console; staff read it; gaps are shown."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from central.db.models import DutyShift, User

Login = Callable[[str], tuple[TestClient, str]]


def test_head_keeps_the_roster_and_staff_read_it(
    login: Login, session_factory: sessionmaker[Session]
) -> None:
    with session_factory.begin() as session:
        wang = session.query(User).filter_by(name="wang").one()
        wang.phone = "13800000001"
    head, csrf = login("zhang")
    page = head.get("/roster").text
    assert "值班表" in page and "当前无人值班" in page and "未来7天无人值班时段" in page
    r = head.post(
        "/roster/changxing/shifts",
        data={
            "role": "duty",
            "user_name": "wang",
            "day_kind": "any",
            "start": "00:00",
            "end": "23:59",
            "csrf_token": csrf,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = head.post(
        "/roster/changxing/shifts",
        data={
            "role": "duty",
            "user_name": "wang",
            "day_kind": "any",
            "start": "23:59",
            "end": "00:00",
            "csrf_token": csrf,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303  # the minute before midnight, overnight
    page = head.get("/roster").text
    assert "当前无人值班" not in page and "13800000001" in page
    assert "未来7天无人值班时段" not in page
    r = head.post(
        "/roster/changxing/overrides",
        data={
            "role": "backup",
            "user_name": "zhang",
            "starts_at": "2026-12-03T08:00",
            "ends_at": "2026-12-05T08:00",
            "note": "张站长替班",
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 200 and "张站长替班" in r.text
    # refused: a person without a phone as duty officer, another site, staff editing
    r = head.post(
        "/roster/changxing/shifts",
        data={
            "role": "duty",
            "user_name": "zhang",
            "day_kind": "any",
            "start": "08:00",
            "end": "18:00",
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 422 and "没有手机号" in r.json()["detail"]
    r = head.post(
        "/roster/xiazhuhu/shifts",
        data={
            "role": "backup",
            "user_name": "zhang",
            "day_kind": "any",
            "start": "08:00",
            "end": "18:00",
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 404
    staff, staff_csrf = login("wang")
    assert "13800000001" in staff.get("/roster").text
    assert "添加班次" not in staff.get("/roster").text
    r = staff.post(
        "/roster/changxing/shifts",
        data={
            "role": "duty",
            "user_name": "wang",
            "day_kind": "any",
            "start": "08:00",
            "end": "18:00",
            "csrf_token": staff_csrf,
        },
    )
    assert r.status_code == 403
    assert (
        head.post(
            "/roster/changxing/shifts",
            data={
                "role": "duty",
                "user_name": "wang",
                "day_kind": "any",
                "start": "08:00",
                "end": "18:00",
            },
        ).status_code
        == 403
    )  # no CSRF token


def test_deleting_a_shift_opens_the_gap_again(
    login: Login, session_factory: sessionmaker[Session]
) -> None:
    with session_factory.begin() as session:
        session.query(User).filter_by(name="wang").one().phone = "13800000001"
    head, csrf = login("zhang")
    head.post(
        "/roster/changxing/shifts",
        data={
            "role": "duty",
            "user_name": "wang",
            "day_kind": "any",
            "start": "00:00",
            "end": "00:00",
            "csrf_token": csrf,
        },
    )  # refused: starts and ends together
    for start, end in (("00:00", "12:00"), ("12:00", "00:00")):
        head.post(
            "/roster/changxing/shifts",
            data={
                "role": "duty",
                "user_name": "wang",
                "day_kind": "any",
                "start": start,
                "end": end,
                "csrf_token": csrf,
            },
        )
    assert "未来7天无人值班时段" not in head.get("/roster").text
    with session_factory() as session:
        first = session.query(DutyShift).order_by(DutyShift.id).first()
        assert first is not None
        shift_id = first.id
    li, li_csrf = login("li")  # another site's staff cannot touch it
    assert (
        li.post(
            f"/roster/changxing/shifts/{shift_id}/delete", data={"csrf_token": li_csrf}
        ).status_code
        == 403
    )
    r = head.post(
        f"/roster/changxing/shifts/{shift_id}/delete",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "未来7天无人值班时段" in head.get("/roster").text
    assert (
        head.post(
            f"/roster/changxing/shifts/{shift_id}/delete", data={"csrf_token": csrf}
        ).status_code
        == 404
    )


def test_the_status_page_warns_of_a_roster_gap(
    login: Login, session_factory: sessionmaker[Session]
) -> None:
    client, _ = login("wang")
    assert "值班表有空缺" in client.get("/status").text  # nobody on the roster yet
    with session_factory.begin() as session:
        session.query(User).filter_by(name="wang").one().phone = "13800000001"
    head, csrf = login("zhang")
    for start, end in (("00:00", "12:00"), ("12:00", "00:00")):
        head.post(
            "/roster/changxing/shifts",
            data={
                "role": "duty",
                "user_name": "wang",
                "day_kind": "any",
                "start": start,
                "end": end,
                "csrf_token": csrf,
            },
        )
    assert "值班表有空缺" not in client.get("/status").text
