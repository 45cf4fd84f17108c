"""报送 page: each site's delivery with every try and receipt, the sites not reported, the files
as sent; a bureau account sees every site (the provincial view), staff their own."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from central.config import CentralConfig
from central.reports.daily import report_day_for, report_window
from central.reports.delivery import Courier
from tests.central.test_report_delivery import TOKEN, http_settings, with_delivery
from tests.peers.bureau_endpoint import BureauEndpoint

Login = Callable[[str], tuple[TestClient, str]]


@pytest.fixture()
def bureau(monkeypatch: pytest.MonkeyPatch) -> Iterator[BureauEndpoint]:
    monkeypatch.setenv("WW_BUREAU_TOKEN", TOKEN)
    with BureauEndpoint(token=TOKEN) as endpoint:
        endpoint.start()
        yield endpoint


@pytest.fixture()
def console_config(console_config: CentralConfig, bureau: BureauEndpoint) -> CentralConfig:
    """The console's config with delivery by upload to the local bureau endpoint."""
    return with_delivery(console_config, http=http_settings(bureau))


def test_provincial_view_lists_receipts_tries_and_the_site_not_reported(
    console_config: CentralConfig,
    session_factory: sessionmaker[Session],
    bureau: BureauEndpoint,
    login: Login,
) -> None:
    day = report_day_for(datetime.now(UTC), console_config) - timedelta(days=3)
    _start, end = report_window(config=console_config, day=day)
    courier = Courier(config=console_config, session_factory=session_factory)
    bureau.fail_next(1, status=503)  # changxing's try fails, xiazhuhu's goes through
    courier.prepare(day, end + timedelta(seconds=5))
    courier.send_due(end + timedelta(seconds=5))
    (receipt,) = [f.receipt_id for f in bureau.filed.values()]

    sheng, _ = login("sheng")  # the bureau: every site
    html = sheng.get(f"/reports/delivery?day={day.isoformat()}").text
    assert "省局视图 provincial view" in html
    assert "未上报 Not reported" in html and "<b>长兴扬子鳄国家级自然保护区</b>" in html
    assert "<b>德清下渚湖湿地</b>" not in html  # delivered, so not listed as missing
    assert receipt in html and "已送达 delivered" in html and "重试中 retrying" in html
    assert "HTTP 503" in html and "未经审核 not reviewed" in html
    assert "未配置报送" not in html
    assert f"wildwatch-ZJ-HZ-DQ-xiazhuhu-{day.isoformat()}" in html

    li, _ = login("li")  # xiazhuhu staff: their site only, and the file as sent
    html = li.get(f"/reports/delivery?day={day.isoformat()}").text
    assert "德清下渚湖湿地" in html and "长兴扬子鳄" not in html
    pdf = li.get(f"/reports/delivery/{day.isoformat()}/xiazhuhu.pdf")
    assert pdf.status_code == 200
    text = subprocess.run(
        ["pdftotext", "-", "-"], input=pdf.content, capture_output=True, check=True
    ).stdout.decode()
    assert "德清下渚湖湿地" in text and "未经审核" in text
    assert (
        bureau.filed[f"wildwatch-ZJ-HZ-DQ-xiazhuhu-{day.isoformat()}"].files[
            f"daily_report_{day.isoformat()}_xiazhuhu.pdf"
        ]
        == pdf.content
    )  # what the page offers is byte for byte what the bureau got
    assert li.get(f"/reports/delivery/{day.isoformat()}/changxing.pdf").status_code == 404

    # the report went out unsigned: signing it now would claim what was not sent
    zhang, csrf = login("zhang")
    late = zhang.post(
        f"/reports/{day.isoformat()}/sign",
        data={
            "site": "changxing",
            "as_of": (end - timedelta(minutes=5)).isoformat(),
            "csrf_token": csrf,
            "reporter": "张站长",
            "reporter_phone": "13900001111",
        },
    )
    assert late.status_code == 409 and "未经审核" in late.json()["detail"]
