"""异常情况 and 巡护 pages as staff use them: open a case by hand, fill the form (checklists,
sample rows), see what is still missing on the case and on the 日报 page; record a patrol with a
photo from the phone; a bad photo keeps nothing; the bureau reads but does not write."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from central.config import CentralConfig
from central.db.models import Case, Patrol
from central.reports.daily import report_day_for, report_window

Login = Callable[[str], tuple[TestClient, str]]


def _local(moment: datetime, config: CentralConfig) -> str:
    return moment.astimezone(ZoneInfo(config.timezone)).strftime("%Y-%m-%dT%H:%M")


def _in_window(config: CentralConfig, share: float) -> datetime:
    """A moment `share` of the way from the current report window's start to now (what the
    日报 page shows is that window, whatever the time of day the test runs)."""
    now = datetime.now(UTC)
    start, _end = report_window(config=config, day=report_day_for(now, config))
    return start + (now - start) * share + timedelta(minutes=1)


def test_staff_open_a_case_by_hand_and_complete_it(
    login: Login,
    console_config: CentralConfig,
    session_factory: sessionmaker[Session],
    images_dir: Path,
) -> None:
    li, csrf = login("li")
    found = _in_window(console_config, 0.5)
    r = li.post(
        "/cases",
        data={
            "csrf_token": csrf,
            "site": "xiazhuhu",
            "found_at": _local(found, console_config),
            "location": "北岸芦苇荡",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    url = r.headers["location"]
    html = li.get(url).text
    assert "日报签发前需补充" in html and "临床症状" in html and "北岸芦苇荡" in html
    # the 日报 page lists what is missing before the head signs
    report = li.get("/reports").text
    assert "签发前需补充 Missing before sign-off" in report and "缺少：物种" in report

    form = {
        "csrf_token": csrf,
        "found_at": _local(found, console_config),
        "location": "北岸芦苇荡",
        "species_scientific": "Nipponia nippon",
        "sick_count": "1",
        "dead_count": "2",
        "flock_count": "9",
        "signs": ["neck_twist", "respiratory"],
        "origin": "wild",
        "human_contact": "no",
        "poultry_farms_3km": "0",
        "sample_kind": ["cloacal_swab", "tissue", "blood"],
        "sample_id": ["DQ-001", "DQ-002", ""],
        "sample_lab": ["县疾控", "省动监", ""],
        "sample_result": ["", "阴性", ""],
        "measures": ["harmless_disposal"],
        "judgement": "疑似中毒",
    }
    r = li.post(url, data=form, follow_redirects=False)
    assert r.status_code == 303
    html = li.get(url).text
    assert "信息完整 Complete for the report" in html
    with session_factory() as session:
        case = session.scalars(sa.select(Case)).one()
    assert (case.sick_count, case.dead_count, case.flock_count) == (1, 2, 9)
    assert [s["sample_id"] for s in case.samples] == ["DQ-001", "DQ-002"]  # empty rows dropped
    assert case.samples[1]["result"] == "阴性" and case.human_contact is False
    assert "缺少" not in li.get("/reports").text

    # a photo taken on site: shown on the case, served to the site's people only
    photo = (images_dir / "ct_md_pheasant.jpg").read_bytes()
    r = li.post(
        f"{url}/photos",
        data={"csrf_token": csrf},
        files=[("photos", ("IMG_0002.jpg", photo, "image/jpeg"))],
        follow_redirects=False,
    )
    assert r.status_code == 303
    src = re.search(r'<img src="(/cases/\d+/photos/[0-9a-f]+\.jpg)"', li.get(url).text)
    assert src is not None and li.get(src.group(1)).content[:3] == b"\xff\xd8\xff"

    # a species the catalogue does not know: the form comes back with the reason, nothing saved
    bad = li.post(url, data={**form, "species_scientific": "Dodo ineptus", "dead_count": "5"})
    assert bad.status_code == 422 and "未保存 Not saved" in bad.text and "catalogue" in bad.text
    with session_factory() as session:
        assert session.scalars(sa.select(Case.dead_count)).one() == 2

    # another site's staff do not see it; the bureau reads it but cannot save
    wang, _ = login("wang")
    assert wang.get(url).status_code == 404
    assert wang.get(src.group(1)).status_code == 404
    sheng, sheng_csrf = login("sheng")
    assert "疑似中毒" in sheng.get(url).text
    assert sheng.post(url, data={**form, "csrf_token": sheng_csrf}).status_code == 403


def test_patrol_with_a_phone_photo_and_a_bad_photo_keeps_nothing(
    login: Login,
    console_config: CentralConfig,
    session_factory: sessionmaker[Session],
    images_dir: Path,
) -> None:
    li, csrf = login("li")
    fields = {
        "csrf_token": csrf,
        "site": "xiazhuhu",
        "observers": "李娜、王伟",
        "route": "东岸巡护线",
        "started_at": _local(_in_window(console_config, 0.3), console_config),
        "ended_at": _local(_in_window(console_config, 0.6), console_config),
        "weather": "多云",
        "sighting_species": ["Nipponia nippon", "Egretta garzetta", ""],
        "sighting_count": ["6", "12", ""],
        "note": "朱鹮觅食正常",
    }
    photo = (images_dir / "ct_md_pheasant.jpg").read_bytes()
    bad = li.post(
        "/patrols",
        data=fields,
        files=[
            ("photos", ("a.jpg", photo, "image/jpeg")),
            ("photos", ("b.jpg", b"not a jpeg", "image/jpeg")),
        ],
    )
    assert bad.status_code == 422 and "b.jpg" in bad.text
    with session_factory() as session:
        assert session.scalars(sa.select(Patrol)).all() == []
    assert not (console_config.evidence_dir / "patrols").exists()

    r = li.post(
        "/patrols",
        data=fields,
        files=[("photos", ("IMG_0001.jpg", photo, "image/jpeg"))],
        follow_redirects=False,
    )
    assert r.status_code == 303
    html = li.get("/patrols").text
    assert "东岸巡护线" in html and "朱鹮 ×6" in html and "白鹭 ×12" in html
    src = re.search(r'<img src="(/patrols/\d+/photos/[0-9a-f]+\.jpg)"', html)
    assert src is not None
    image = li.get(src.group(1))
    assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"
    wang, _ = login("wang")  # changxing staff
    assert wang.get(src.group(1)).status_code == 404
    assert "东岸巡护线" not in wang.get("/patrols").text
    report = li.get("/reports").text
    assert "巡护记录 Patrols: 1 次" in report
