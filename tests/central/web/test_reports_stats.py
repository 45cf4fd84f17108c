"""日报 and 统计 pages: each person sees their sites' sections, the head signs once."""

from __future__ import annotations

import io
import json
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, date, datetime

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from central import crud
from central.config import CentralConfig
from central.reports.daily import build_daily_report, produce, report_day_for
from central.reports.record import records
from tests.central.conftest import make_event
from tests.central.web.conftest import Seeded

Login = Callable[[str], tuple[TestClient, str]]


def _write_report(
    session_factory: sessionmaker[Session], config: CentralConfig, moment: datetime
) -> str:
    """Write the report whose window holds `moment`; its day."""
    day = report_day_for(moment, config)
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
    as_of = re.search(r'name="as_of" value="([^"]+)"', html)
    assert day is not None and as_of is not None
    assert 'name="reporter" maxlength="64" required value="' in html  # prefilled with the head
    form = {
        "site": "changxing",
        "note": "已核实",
        "as_of": as_of.group(1),
        "csrf_token": csrf,
        "reporter": "李四",
        "reporter_phone": "13900001111",
    }
    # a day with no report, or a report time in the future, cannot be signed
    assert head.post("/reports/2001-01-01/sign", data=form).status_code == 404
    future = {**form, "as_of": "2999-01-01T00:00:00+00:00"}
    assert head.post(f"/reports/{day.group(1)}/sign", data=future).status_code == 422
    r = head.post(f"/reports/{day.group(1)}/sign", data=form, follow_redirects=False)
    assert r.status_code == 303
    html = head.get("/reports").text
    assert "已签发 Signed by <b>zhang</b>" in html and "已核实" in html and "数据截至" in html
    assert "填报人 reporter 李四 13900001111" in html
    # the sign-off is part of the report: reporter, phone and the head as auditor
    with session_factory() as session:
        report = build_daily_report(
            session=session, config=console_config, day=date.fromisoformat(day.group(1))
        )
    signoff = next(s.signoff for s in report.sites if s.site == "changxing")
    assert signoff is not None
    assert (signoff.reporter, signoff.reporter_phone, signoff.auditor) == (
        "李四",
        "13900001111",
        "张站长",  # the head's display name
    )
    assert all(s.signoff is None for s in report.sites if s.site != "changxing")
    bad_phone = {**form, "site": "changxing", "reporter_phone": "<script>"}
    assert head.post(f"/reports/{day.group(1)}/sign", data=bad_phone).status_code == 422
    # signing another site's report is refused; staff may not sign at all
    r = head.post(f"/reports/{day.group(1)}/sign", data={**form, "site": "xiazhuhu"})
    assert r.status_code == 404
    staff_csrf = re.search(r'name="csrf_token" value="([^"]+)"', staff.get("/queue").text)
    assert staff_csrf is not None
    r = staff.post(
        f"/reports/{day.group(1)}/sign", data={**form, "csrf_token": staff_csrf.group(1)}
    )
    assert r.status_code == 403


def test_report_downloads_keep_to_the_persons_sites(
    login: Login,
    seeded: Seeded,
    session_factory: sessionmaker[Session],
    console_config: CentralConfig,
) -> None:
    day = _write_report(session_factory, console_config, seeded.cx_anomaly.captured_at)
    li, _ = login("li")  # xiazhuhu only
    html = li.get("/reports").text
    assert f"/reports/{day}.xlsx" in html
    body = json.loads(li.get(f"/reports/{day}.json").content)
    assert [s["site"] for s in body["sites"]] == ["xiazhuhu"]
    # the verdict is xiazhuhu's own: the dead egret at changxing is not told to its staff
    assert body["zero_report"] is True and body["abnormal"] is False
    assert "疫病异常" not in body["summary_zh"].replace("无疫病异常", "")
    book = load_workbook(io.BytesIO(li.get(f"/reports/{day}.xlsx").content))
    text = " ".join(
        str(c.value)
        for ws in book.worksheets
        for row in ws.iter_rows()
        for c in row
        if c.value is not None
    )
    assert "下渚湖" in text and "长兴扬子鳄" not in text
    pdf = li.get(f"/reports/{day}.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    printed = subprocess.run(
        ["pdftotext", "-", "-"], input=pdf.content, capture_output=True, check=True
    ).stdout.decode()
    assert "下渚湖" in printed and "长兴扬子鳄" not in printed
    bureau, _ = login("sheng")
    whole_pdf = bureau.get(f"/reports/{day}.pdf")
    assert whole_pdf.status_code == 200 and whole_pdf.content.startswith(b"%PDF")
    whole = json.loads(bureau.get(f"/reports/{day}.json").content)
    assert {s["site"] for s in whole["sites"]} == {"changxing", "xiazhuhu"}
    assert whole["abnormal"] is True and whole["summary_zh"] not in text
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


def test_delivery_page_without_delivery_says_reports_stay_on_disk(login: Login) -> None:
    client, _ = login("wang")
    html = client.get("/reports/delivery").text
    assert "未配置报送" in html and "尚未生成 Not prepared yet" in html
