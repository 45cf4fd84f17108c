"""值班表: the head keeps their site's roster in the console; staff read it; gaps are shown."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from central.db.models import DutyShift, User

Login = Callable[[str], tuple[TestClient, str]]
GAP = "未来7天无人值班时段"


def add_shift(
    client: TestClient,
    csrf: str | None,
    *,
    start: str,
    end: str,
    user: str = "wang",
    role: str = "duty",
    site: str = "changxing",
) -> httpx.Response:
    data = {"role": role, "user_name": user, "day_kind": "any", "start": start, "end": end}
    if csrf is not None:
        data["csrf_token"] = csrf
    r: httpx.Response = client.post(f"/roster/{site}/shifts", data=data, follow_redirects=False)
    return r


def cover_the_clock(client: TestClient, csrf: str) -> None:
    """wang on duty around the clock (two shifts, one past midnight)."""
    for start, end in (("00:00", "12:00"), ("12:00", "00:00")):
        assert add_shift(client, csrf, start=start, end=end).status_code == 303


def give_wang_a_phone(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        session.query(User).filter_by(name="wang").one().phone = "13800000001"


def test_head_keeps_the_roster_and_staff_read_it(
    login: Login, session_factory: sessionmaker[Session]
) -> None:
    give_wang_a_phone(session_factory)
    head, csrf = login("zhang")
    page = head.get("/roster").text
    assert "值班表" in page and "当前无人值班" in page and GAP in page
    cover_the_clock(head, csrf)
    page = head.get("/roster").text
    assert "当前无人值班" not in page and "13800000001" in page and GAP not in page
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
    # refused: a duty officer without a phone, another site, no CSRF token, staff editing
    r = add_shift(head, csrf, user="zhang", start="08:00", end="18:00")
    assert r.status_code == 422 and "没有手机号" in r.json()["detail"]
    assert (
        add_shift(
            head, csrf, site="xiazhuhu", role="backup", user="zhang", start="08:00", end="18:00"
        ).status_code
        == 404
    )
    assert add_shift(head, None, start="08:00", end="18:00").status_code == 403
    staff, staff_csrf = login("wang")
    page = staff.get("/roster").text
    assert "13800000001" in page and "添加班次" not in page
    assert add_shift(staff, staff_csrf, start="08:00", end="18:00").status_code == 403


def test_deleting_a_shift_opens_the_gap_again(
    login: Login, session_factory: sessionmaker[Session]
) -> None:
    give_wang_a_phone(session_factory)
    head, csrf = login("zhang")
    assert add_shift(head, csrf, start="00:00", end="00:00").status_code == 422
    cover_the_clock(head, csrf)
    assert GAP not in head.get("/roster").text
    with session_factory() as session:
        first = session.query(DutyShift).order_by(DutyShift.id).first()
        assert first is not None
        url = f"/roster/changxing/shifts/{first.id}/delete"
    li, li_csrf = login("li")  # another site's staff cannot touch it
    assert li.post(url, data={"csrf_token": li_csrf}).status_code == 403
    assert head.post(url, data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert GAP in head.get("/roster").text
    assert head.post(url, data={"csrf_token": csrf}).status_code == 404


def test_the_status_page_warns_of_a_roster_gap(
    login: Login, session_factory: sessionmaker[Session]
) -> None:
    client, _ = login("wang")
    assert "值班表有空缺" in client.get("/status").text  # nobody on the roster yet
    give_wang_a_phone(session_factory)
    head, csrf = login("zhang")
    cover_the_clock(head, csrf)
    assert "值班表有空缺" not in client.get("/status").text
