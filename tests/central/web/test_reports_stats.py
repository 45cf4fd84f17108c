"""日报 and 统计 pages: each person sees their sites' sections, the head signs once."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from central import crud
from central.config import CentralConfig
from central.reports.daily import produce, report_day_for
from central.reports.record import records
from tests.central.conftest import make_event
from tests.central.web.conftest import Seeded

Login = Callable[[str], tuple[TestClient, str]]


def _write_today(session_factory: sessionmaker[Session], config: CentralConfig) -> str:
    day = report_day_for(datetime.now(UTC), config)
    with session_factory() as session:
        produce(
            session=session,
            config=config,
            day=day,
            out_dir=config.report_dir,
            reports=records(config.report_dir),
        )
    return day.isoformat()


def test_report_page_shows_own_sites_and_head_signs_once(
    login: Login,
    seeded: Seeded,
    session_factory: sessionmaker[Session],
    console_config: CentralConfig,
) -> None:
    # captured now: inside the window of the report due next, whatever the time of day
    fresh = make_event(
        seq=9,
        kind="anomaly",
        rule="free_roaming_dog",
        category="dog",
        severity="warning",
        captured_at=datetime.now(UTC),
    )
    with session_factory.begin() as session:
        crud.insert_event(session=session, payload=fresh, received_at=datetime.now(UTC))
    staff, _ = login("wang")
    html = staff.get("/reports").text
    assert "日报" in html and "长兴扬子鳄" in html and "德清下渚湖" not in html
    assert f'href="/events/{fresh.event_id}"' in html
    assert "审核签发 Sign" not in html  # staff cannot sign
    head, csrf = login("zhang")
    html = head.get("/reports").text
    day = re.search(r'action="/reports/([0-9-]+)/sign"', html)
    assert day is not None
    r = head.post(
        f"/reports/{day.group(1)}/sign",
        data={"site": "changxing", "note": "已核实", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    html = head.get("/reports").text
    assert "已签发 Signed by <b>zhang</b>" in html and "已核实" in html
    # signing another site's report is refused; staff may not sign at all
    r = head.post(f"/reports/{day.group(1)}/sign", data={"site": "xiazhuhu", "csrf_token": csrf})
    assert r.status_code == 404
    staff_csrf = re.search(r'name="csrf_token" value="([^"]+)"', staff.get("/queue").text)
    assert staff_csrf is not None
    r = staff.post(
        f"/reports/{day.group(1)}/sign",
        data={"site": "changxing", "csrf_token": staff_csrf.group(1)},
    )
    assert r.status_code == 403


def test_report_downloads_keep_to_the_persons_sites(
    login: Login,
    seeded: Seeded,
    session_factory: sessionmaker[Session],
    console_config: CentralConfig,
) -> None:
    day = _write_today(session_factory, console_config)
    li, _ = login("li")  # xiazhuhu only
    html = li.get("/reports").text
    assert f"/reports/{day}.xlsx" in html
    body = json.loads(li.get(f"/reports/{day}.json").content)
    assert [s["site"] for s in body["sites"]] == ["xiazhuhu"]
    book = load_workbook(io.BytesIO(li.get(f"/reports/{day}.xlsx").content))
    text = " ".join(
        str(c.value)
        for ws in book.worksheets
        for row in ws.iter_rows()
        for c in row
        if c.value is not None
    )
    assert "下渚湖" in text and "长兴扬子鳄" not in text
    bureau, _ = login("sheng")
    whole = json.loads(bureau.get(f"/reports/{day}.json").content)
    assert {s["site"] for s in whole["sites"]} == {"changxing", "xiazhuhu"}
    assert li.get("/reports/2001-01-01.json").status_code == 404


def test_stats_page_carries_chart_data_for_own_sites(login: Login, seeded: Seeded) -> None:
    client, _ = login("wang")
    html = client.get("/stats").text
    assert "/static/vendor/echarts/echarts.min.js" in html
    found = re.search(r'<script type="application/json" id="stats-data">(.*?)</script>', html, re.S)
    assert found is not None
    data = json.loads(found.group(1))
    assert len(data["days"]) == 30
    assert list(data["sites"]) == ["长兴扬子鳄国家级自然保护区"]
    assert sum(data["species"]["白鹭"]) == 1
    assert data["totals"] == {"events": 2, "anomalies": 1, "unreviewed": 1}
    assert sum(data["backlog"]) == 1
    assert data["rules"] == {"鸟类静止（疑似死亡） motionless bird": 1}
