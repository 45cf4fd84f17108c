"""异常情况 and 巡护记录: validated once (central/cases.py), kept apart (sick and dead), listed
as missing until complete, and carried into the report's JSON, XLSX and PDF and the API."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from central import cases as casebook
from central import crud
from central.app import create_app
from central.config import CentralConfig
from central.db.models import Case
from central.reports import record
from central.reports.daily import build_daily_report
from central.web import queries
from tests.central.conftest import make_event
from tests.central.staff import auth, with_staff

SH = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 22)
FOUND = datetime(2026, 11, 22, 9, 30, tzinfo=SH)
COMPLETE: dict[str, Any] = {
    "location": "下渚湖东岸芦苇荡",
    "species_scientific": "Nipponia nippon",
    "sick_count": 2,
    "dead_count": 3,
    "flock_count": 14,
    "signs": ["neck_twist", "diarrhoea"],
    "origin": "released",
    "human_contact": False,
    "poultry_farms_3km": 2,
    "poultry_check": "两家养鸭场已排查，未见异常",
    "samples": [
        {
            "kind": "cloacal_swab",
            "sample_id": "DQ-2026-011",
            "laboratory": "浙江省动物疫病预防控制中心",
        }
    ],
    "measures": ["isolation", "harmless_disposal"],
    "judgement": "疑似禽流感，待实验室确诊",
}


def test_missing_lists_each_required_field_until_complete(
    session_factory: sessionmaker[Session], central_config: CentralConfig
) -> None:
    catalogue = central_config.species_catalogue
    with session_factory.begin() as session:
        case = casebook.open_by_hand(
            session=session,
            data=casebook.CaseCreate(site="xiazhuhu", found_at=FOUND),
            sites=set(central_config.sites),
            catalogue=catalogue,
            by="li",
            now=FOUND,
        )
        assert casebook.missing(case) == list(casebook.MISSING_ZH)
        casebook.update(
            session=session,
            case=case,
            data=casebook.CaseInput.model_validate(COMPLETE),
            catalogue=catalogue,
            by="li",
            now=FOUND,
        )
        assert casebook.missing(case) == []
        assert (case.species_chinese, case.sick_count, case.dead_count) == ("朱鹮", 2, 3)
        # no sample but a reason is complete too; neither is not
        casebook.update(
            session=session,
            case=case,
            data=casebook.CaseInput.model_validate({**COMPLETE, "samples": []}),
            catalogue=catalogue,
            by="li",
            now=FOUND,
        )
        assert casebook.missing(case) == ["samples"]


def test_bad_records_are_refused_with_the_reason(
    session_factory: sessionmaker[Session], central_config: CentralConfig
) -> None:
    with pytest.raises(ValidationError, match="sick_count"):
        casebook.CaseInput.model_validate({"sick_count": -1})
    with pytest.raises(ValidationError, match="signs"):
        casebook.CaseInput.model_validate({"signs": ["sneezing"]})
    with pytest.raises(ValidationError, match="timezone"):
        casebook.CaseCreate.model_validate({"site": "xiazhuhu", "found_at": "2026-11-22T09:30"})
    with pytest.raises(ValidationError, match="ends before it starts"):
        casebook.PatrolInput(
            site="xiazhuhu",
            observers="王伟",
            route="东线",
            started_at=FOUND,
            ended_at=FOUND - timedelta(hours=1),
        )
    with session_factory.begin() as session, pytest.raises(casebook.CaseError, match="catalogue"):
        casebook.open_by_hand(
            session=session,
            data=casebook.CaseCreate(site="xiazhuhu", found_at=FOUND, species_scientific="Dodo"),
            sites=set(central_config.sites),
            catalogue=central_config.species_catalogue,
            by="li",
            now=FOUND,
        )
    with session_factory.begin() as session, pytest.raises(casebook.CaseError, match="site"):
        casebook.open_by_hand(
            session=session,
            data=casebook.CaseCreate(site="elsewhere", found_at=FOUND),
            sites={"xiazhuhu"},
            catalogue=central_config.species_catalogue,
            by="li",
            now=FOUND,
        )


def _seed(session_factory: sessionmaker[Session], config: CentralConfig) -> int:
    """A case from a confirmed camera event (incomplete) and one by hand (complete), a patrol."""
    egret = make_event(
        captured_at=FOUND - timedelta(hours=2),
        kind="anomaly",
        rule="motionless_bird",
        severity="critical",
        species={"scientific_name": "Egretta garzetta", "chinese_name": "白鹭", "confidence": 0.9},
    )
    with session_factory.begin() as session:
        crud.insert_event(session=session, payload=egret, received_at=FOUND)
        row = crud.get_event(session=session, event_id=str(egret.event_id))
        assert row is not None
        queries.open_case(session=session, row=row, opened_by="wang", now=FOUND)
        hand = casebook.open_by_hand(
            session=session,
            data=casebook.CaseCreate.model_validate(
                {**COMPLETE, "site": "xiazhuhu", "found_at": FOUND}
            ),
            sites=set(config.sites),
            catalogue=config.species_catalogue,
            by="li",
            now=FOUND,
        )
        casebook.record_patrol(
            session=session,
            data=casebook.PatrolInput(
                site="xiazhuhu",
                observers="王伟、李娜",
                route="东岸巡护线",
                started_at=FOUND - timedelta(hours=1),
                ended_at=FOUND,
                weather="小雨",
                sightings=[casebook.Sighting(species_scientific="Nipponia nippon", count=17)],
            ),
            sites=set(config.sites),
            catalogue=config.species_catalogue,
            by="li",
            now=FOUND,
        )
        return hand.id


def test_report_carries_cases_apart_patrols_and_what_is_missing(
    session_factory: sessionmaker[Session],
    central_config: CentralConfig,
    tmp_path: Path,
    images_dir: Path,
) -> None:
    hand_id = _seed(session_factory, central_config)
    with session_factory.begin() as session:  # a photo of the carcass, taken on site
        case = session.get(Case, hand_id)
        assert case is not None
        photo = (images_dir / "ct_md_pheasant.jpg").read_bytes()
        casebook.add_photos(record=case, photos=[("p.jpg", photo)], evidence_dir=tmp_path)
    with session_factory() as session:
        report = build_daily_report(session=session, config=central_config, day=DAY)
    sites = {s.site: s for s in report.sites}
    (camera_case,) = sites["changxing"].cases
    assert camera_case.event_id is not None and camera_case.species_chinese == "白鹭"
    assert "临床症状" in camera_case.missing_zh and "处置措施" in camera_case.missing_zh
    assert sites["changxing"].missing_zh == [
        f"异常情况 #{camera_case.case_id} 缺少：" + "、".join(camera_case.missing_zh)
    ]
    (hand,) = sites["xiazhuhu"].cases
    assert hand.case_id == hand_id and hand.event_id is None and hand.missing == []
    assert (hand.sick_count, hand.dead_count, hand.flock_count) == (2, 3, 14)
    assert hand.protection_level == "I" and hand.origin_zh == "人工繁育放归"
    assert (
        hand.samples[0].laboratory == "浙江省动物疫病预防控制中心" and hand.samples[0].result == ""
    )
    assert hand.measures_zh == ["隔离", "无害化处理"]
    (patrol,) = sites["xiazhuhu"].patrols
    assert patrol.weather == "小雨" and patrol.sightings[0].species_chinese == "朱鹮"
    by_patrol = [sp for sp in sites["xiazhuhu"].species if sp.method == "patrol"]
    assert [(sp.chinese_name, sp.count) for sp in by_patrol] == [("朱鹮", 17)]
    assert sites["xiazhuhu"].missing_zh == []

    json_path, xlsx_path = record.write_report(report, tmp_path)
    assert '"dead_count": 3' in json_path.read_text(encoding="utf-8")
    book = load_workbook(xlsx_path)
    cases = list(book["异常情况"].iter_rows(values_only=True))
    assert len(cases) == 3 and cases[0][8] == "死亡数 Dead"
    assert any(row[1] == hand_id and row[8] == 3 and row[7] == 2 for row in cases[1:])
    patrols = list(book["巡护记录"].iter_rows(values_only=True))
    assert patrols[1][3] == "王伟、李娜" and "朱鹮 17" in str(patrols[1][6])
    pdf = record.write_pdf(report, tmp_path / "r.pdf", evidence_dir=tmp_path, font=None)
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for wanted in (
        "异常情况",
        "患病 2，死亡 3，同群 14",
        "浙江省动物疫病预防控制中心",
        "无害化处理",
        "待检",
        "巡护记录",
        "东岸巡护线",
        "待补充",
    ):
        assert wanted in text, wanted


@pytest.fixture()
def api(
    central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> Iterator[TestClient]:
    app = create_app(config=with_staff(central_config), session_factory=session_factory)
    with TestClient(app) as client:
        yield client


def test_api_opens_fills_and_lists_cases_and_patrols(api: TestClient, images_dir: Path) -> None:
    r = api.post(
        "/api/cases",
        json={"site": "xiazhuhu", "found_at": FOUND.isoformat(), "location": "北岸"},
        headers=auth("钱七"),
    )
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["missing"][0] == "species" and case["location"] == "北岸"
    r = api.put(
        f"/api/cases/{case['case_id']}",
        json={**COMPLETE, "found_at": FOUND.isoformat()},
        headers=auth("钱七"),
    )
    assert r.status_code == 200 and r.json()["missing"] == []
    assert r.json()["species_chinese"] == "朱鹮"
    # the bureau's form keys are stable: what PUT answers is the report's CaseRecord
    assert {"sick_count", "dead_count", "samples", "measures", "judgement"} <= set(r.json())
    bad = api.put(f"/api/cases/{case['case_id']}", json={"origin": "zoo"}, headers=auth("钱七"))
    assert bad.status_code == 422
    unknown = api.put(
        f"/api/cases/{case['case_id']}", json={"species_scientific": "Dodo"}, headers=auth("钱七")
    )
    assert unknown.status_code == 422 and "catalogue" in unknown.json()["detail"]
    # a token limited to xiazhuhu neither sees nor opens changxing's
    assert (
        api.post(
            "/api/cases",
            json={"site": "changxing", "found_at": FOUND.isoformat()},
            headers=auth("钱七"),
        ).status_code
        == 422
    )
    assert api.get(f"/api/cases/{case['case_id']}", headers=auth("钱七")).status_code == 200
    listed = api.get("/api/cases", params={"days": 366}, headers=auth()).json()
    assert [c["case_id"] for c in listed] == [case["case_id"]]
    assert api.get("/api/cases", headers={}).status_code == 401
    patrol = api.post(
        "/api/patrols",
        json={
            "site": "xiazhuhu",
            "observers": "李娜",
            "route": "北线",
            "started_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
            "ended_at": datetime.now(UTC).isoformat(),
            "sightings": [{"species_scientific": "Nipponia nippon", "count": 4}],
        },
        headers=auth(),
    )
    assert patrol.status_code == 201, patrol.text
    assert patrol.json()["sightings"] == [
        {"species_scientific": "Nipponia nippon", "species_chinese": "朱鹮", "count": 4}
    ]
    assert len(api.get("/api/patrols", headers=auth()).json()) == 1
    assert api.get("/api/patrols", params={"site": "changxing"}, headers=auth()).json() == []
    # photos: checked as images, all or none kept, at most 6 a patrol
    url = f"/api/patrols/{patrol.json()['patrol_id']}/photos"
    photo = (images_dir / "ct_md_pheasant.jpg").read_bytes()
    bad = api.post(
        url,
        files=[
            ("photos", ("a.jpg", photo, "image/jpeg")),
            ("photos", ("b.jpg", photo[:500], "image/jpeg")),
        ],
        headers=auth(),
    )
    assert bad.status_code == 422 and "b.jpg" in bad.json()["detail"]
    good = api.post(url, files=[("photos", ("a.jpg", photo, "image/jpeg"))], headers=auth())
    assert good.status_code == 200 and len(good.json()["photos"]) == 1
    too_many = [("photos", (f"{n}.jpg", photo, "image/jpeg")) for n in range(6)]
    assert api.post(url, files=too_many, headers=auth()).status_code == 422
    assert (
        api.post("/api/patrols/999/photos", files=too_many[:1], headers=auth()).status_code == 404
    )


def test_records_made_after_their_report_are_listed_once_in_the_next(
    session_factory: sessionmaker[Session], central_config: CentralConfig
) -> None:
    """A carcass found yesterday but recorded today, and a patrol logged after its report,
    appear in the next report marked late, and in no report after it."""
    # recorded on the 22nd at 15:20, just after the cut-off, ten minutes before the report is
    # built: inside the next report's overlap, so only the ids on file keep it from a second
    now = FOUND + timedelta(hours=5, minutes=50)
    with session_factory.begin() as session:
        casebook.open_by_hand(
            session=session,
            data=casebook.CaseCreate(
                site="xiazhuhu", found_at=FOUND - timedelta(days=1), location="西岸"
            ),
            sites=set(central_config.sites),
            catalogue=central_config.species_catalogue,
            by="li",
            now=now,
        )
        patrol = casebook.record_patrol(
            session=session,
            data=casebook.PatrolInput(
                site="xiazhuhu",
                observers="李娜",
                route="西线",
                started_at=FOUND - timedelta(days=1),
                ended_at=FOUND - timedelta(days=1) + timedelta(hours=2),
            ),
            sites=set(central_config.sites),
            catalogue=central_config.species_catalogue,
            by="li",
            now=now,
        )
        patrol.created_at = now
    with session_factory() as session:
        first = build_daily_report(
            session=session, config=central_config, day=DAY, now=FOUND + timedelta(hours=6)
        )
    site = next(s for s in first.sites if s.site == "xiazhuhu")
    assert [(c.location, c.late) for c in site.cases] == [("西岸", True)]
    assert [(p.route, p.late) for p in site.patrols] == [("西线", True)]
    on_file = {DAY: record.record_of(first)}
    with session_factory() as session:
        second = build_daily_report(
            session=session,
            config=central_config,
            day=DAY + timedelta(days=1),
            reports=on_file,
            now=FOUND + timedelta(days=1, hours=6),
        )
    assert all(not s.cases and not s.patrols for s in second.sites)
