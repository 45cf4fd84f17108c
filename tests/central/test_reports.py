"""The 15:00 daily report: window, per-site sections, the three sections, zero report, XLSX."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from central import accounts, crud, roster
from central.app import create_app
from central.commands import cli
from central.config import CentralConfig
from central.db.models import Event, EvidenceFile
from central.reports.daily import (
    build_daily_report,
    latest_closed_day,
    report_day_for,
    report_window,
)
from central.reports.model import Section, section_of
from central.reports.record import write_report
from central.roster import DayKind, DutyRole
from tests.central.conftest import make_event

SH = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 22)
SHEETS = [
    "报告信息",
    "日报汇总",
    "物种统计",
    "疫病异常",
    "其他情况",
    "设备故障",
    "补报（迟到数据）",
    "异常情况",
    "巡护记录",
    "值班空缺",
]
EGRET = {"scientific_name": "Egretta garzetta", "chinese_name": "白鹭", "confidence": 0.9}
CRANE = {"scientific_name": "Grus japonensis", "chinese_name": "丹顶鹤", "confidence": 0.9}
SHA = "0" * 64


def _at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=SH)


def _with(config: CentralConfig, **report: Any) -> CentralConfig:
    """The test config with coordinates for changxing and report settings changed."""
    data = config.model_dump(mode="json", exclude={"mqtt": {"password"}})
    data["sites"]["changxing"].update(latitude=31.03, longitude=119.72)
    data["report"].update(report)
    return CentralConfig.model_validate(data)


def _store(session_factory: sessionmaker[Session], events: dict[str, Any], at: datetime) -> None:
    with session_factory.begin() as session:
        for event in events.values():
            crud.insert_event(session=session, payload=event, received_at=at)


def _anomaly(hour: int, rule: str, category: str = "bird", **kw: Any) -> Any:
    return make_event(captured_at=_at(22, hour), kind="anomaly", category=category, rule=rule, **kw)


def _seed(session_factory: sessionmaker[Session]) -> dict[str, str]:
    events = {
        "before": make_event(captured_at=_at(21, 14, 59, 59), count=100),  # previous report
        "start": make_event(captured_at=_at(21, 15), count=2, species=EGRET),
        "obs": make_event(captured_at=_at(22, 8), count=3, species=EGRET, camera="cam2"),
        "crane": make_event(captured_at=_at(22, 9), count=1, species=CRANE),
        "person": make_event(captured_at=_at(22, 1), category="person", count=1),
        "anomaly": make_event(
            captured_at=_at(22, 2, 13),
            kind="anomaly",
            category="bird",
            rule="motionless_bird",
            severity="alert",
            species=EGRET,
            message_zh="白鹭卧地不动超过30分钟",
            evidence=[
                {"name": "cam1-0213.jpg", "sha256": SHA, "size": 10},
                {"name": "cam1-0243.jpg", "sha256": SHA, "size": 10},
            ],
        ),
        "dismissed": _anomaly(3, "free_roaming_dog", "dog"),
        "intrusion": _anomaly(4, "night_intrusion", "person"),
        "camera": _anomaly(5, "camera_health", "camera"),
        "storage": _anomaly(6, "storage_low", "camera"),
        "cutoff": make_event(  # exactly 15:00: belongs to the next report
            captured_at=_at(22, 15), kind="anomaly", category="person", rule="night_intrusion"
        ),
    }
    _store(session_factory, events, _at(22, 15))
    ids = {k: str(v.event_id) for k, v in events.items()}
    with session_factory.begin() as session:
        session.execute(
            sa.update(Event)
            .where(Event.event_id == ids["dismissed"])
            .values(review_status="dismissed")
        )
        crud.review_event(
            session=session,
            event_id=ids["anomaly"],
            decision="confirmed",
            reviewer="张三",
            note="已现场核实，已采样送检",
            at=_at(22, 9, 30),
        )
        session.add(
            EvidenceFile(
                event_id=ids["anomaly"],
                name="cam1-0213.jpg",
                sha256=SHA,
                size=10,
                path="changxing/cam1-0213.jpg",
                received_at=_at(22, 3),
            )
        )
    return ids


def test_window_and_report_day(central_config: CentralConfig) -> None:
    start, end = report_window(config=central_config, day=DAY)
    assert (start, end) == (_at(21, 15), _at(22, 15))
    assert report_day_for(_at(22, 14, 59, 59), central_config) == DAY
    assert report_day_for(_at(22, 15), central_config) == date(2026, 11, 23)


def test_latest_closed_window_follows_cutoff_and_grace(central_config: CentralConfig) -> None:
    # The old timer's bug: a run after boot at 09:00 took the boot date, whose window is open.
    assert latest_closed_day(_at(22, 9), central_config) == date(2026, 11, 21)
    assert latest_closed_day(_at(22, 15, 9, 59), central_config) == date(2026, 11, 21)
    assert latest_closed_day(_at(22, 15, 10), central_config) == DAY
    assert latest_closed_day(_at(22, 15), _with(central_config, grace_minutes=0)) == DAY
    morning = _with(central_config, cutoff="10:00")
    assert report_window(config=morning, day=DAY) == (_at(21, 10), _at(22, 10))
    assert latest_closed_day(_at(22, 10, 10), morning) == DAY
    assert latest_closed_day(_at(22, 10, 9), morning) == date(2026, 11, 21)


@pytest.mark.parametrize(
    ("grace_minutes", "at_15_05", "at_15_20"),
    [
        (0, DAY, DAY),  # closed at the cut-off itself
        (10, date(2026, 11, 21), DAY),  # the default
        (30, date(2026, 11, 21), date(2026, 11, 21)),  # still waiting for late outboxes
    ],
)
def test_latest_closed_window_follows_the_configured_grace(
    central_config: CentralConfig, grace_minutes: int, at_15_05: date, at_15_20: date
) -> None:
    config = _with(central_config, grace_minutes=grace_minutes)
    assert config.report.grace == timedelta(minutes=grace_minutes)
    assert latest_closed_day(_at(22, 15, 5), config) == at_15_05
    assert latest_closed_day(_at(22, 15, 20), config) == at_15_20


def test_rules_map_to_sections() -> None:
    disease = ["motionless_bird", "mortality_cluster", "abnormal_count", "high_risk_species"]
    assert {section_of(r) for r in disease} == {Section.DISEASE}
    assert {section_of(r) for r in ("night_intrusion", "free_roaming_dog")} == {Section.OTHER}
    assert {section_of(r) for r in ("camera_health", "storage_low")} == {Section.EQUIPMENT}
    assert section_of("some_new_rule") is Section.DISEASE  # unknown: never hide it in 零报告


def test_day_with_anomalies(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    config = _with(central_config)
    ids = _seed(session_factory)
    with session_factory() as session:
        report = build_daily_report(session=session, config=config, day=DAY, now=_at(22, 15, 10))
    assert report.abnormal and not report.zero_report and not report.provisional
    assert report.title == "湖州市监测站（ZJ-HZ-001）陆生野生动物疫源疫病监测日报 2026-11-22"
    assert report.generated_at == _at(22, 15, 10)
    assert report.summary_zh == "发现疫病异常 1 起；其他情况 1 起；设备故障 2 起"
    assert [s.site for s in report.sites] == ["changxing", "xiazhuhu"]
    cx, xz = report.sites
    assert cx.name_zh == "长兴扬子鳄国家级自然保护区" and cx.station_code == "ZJ-HZ-CX"
    assert cx.abnormal and cx.abnormal_zh == "是"
    assert [a.event_id for a in cx.in_section(Section.DISEASE)] == [ids["anomaly"]]
    assert [a.event_id for a in cx.in_section(Section.OTHER)] == [ids["intrusion"]]
    assert [a.event_id for a in cx.in_section(Section.EQUIPMENT)] == [ids["camera"], ids["storage"]]
    assert ids["dismissed"] not in {a.event_id for a in cx.anomalies}
    assert ids["cutoff"] not in {a.event_id for a in cx.anomalies}
    anomaly = cx.anomalies[0]
    assert anomaly.rule_zh == "静止鸟类（疑似死亡或患病）" and anomaly.section_zh == "疫病异常"
    assert anomaly.species_chinese == "白鹭" and anomaly.time == _at(22, 2, 13)
    assert anomaly.message == "白鹭卧地不动超过30分钟"
    assert (anomaly.reviewer, anomaly.review_note) == ("张三", "已现场核实，已采样送检")
    assert anomaly.reviewed_at == _at(22, 9, 30) and anomaly.review_zh == "已确认"
    assert [(p.name, p.uploaded) for p in anomaly.photos] == [
        ("cam1-0213.jpg", True),
        ("cam1-0243.jpg", False),
    ]
    assert {c.category: c.count for c in cx.categories} == {"bird": 6, "person": 1}
    egret = next(s for s in cx.species if s.chinese_name == "白鹭")
    assert (egret.count, egret.max_count, egret.method, egret.cameras) == (
        5,
        3,
        "camera",
        ["cam1", "cam2"],
    )
    assert {s.chinese_name: s.count for s in cx.species} == {"白鹭": 5, "丹顶鹤": 1}
    assert not xz.abnormal and xz.summary_zh == "无异常" and xz.abnormal_zh == "否"
    assert xz.categories == [] and xz.anomalies == []

    json_path, xlsx_path = write_report(report, tmp_path / "out")
    assert json_path.name == "daily_report_2026-11-22.json"
    assert xlsx_path.name == "daily_report_2026-11-22.xlsx"
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["sites"][1]["summary_zh"] == "无异常"
    assert data["title"] == report.title and data["generated_at"].startswith("2026-11-22T15:10")
    assert data["sites"][0]["latitude"] == 31.03
    assert data["sites"][0]["anomalies"][0]["photos"][0]["name"] == "cam1-0213.jpg"
    assert data["sites"][0]["anomalies"][0]["reviewer"] == "张三"

    wb = load_workbook(xlsx_path)
    assert wb.sheetnames == SHEETS
    info = dict(wb["报告信息"].iter_rows(min_row=2, values_only=True))
    assert info["标题 Title"].startswith(report.title)
    assert (info["监测站 Station"], info["监测站代码 Station code"]) == (
        "湖州市监测站",
        "ZJ-HZ-001",
    )
    assert info["生成时间 Generated at"] == "2026-11-22 15:10:00"
    assert info["是否发现疫病异常 Abnormal (wildlife epidemic)"] == "是"
    summary = list(wb["日报汇总"].iter_rows(values_only=True))
    assert summary[0][0].startswith("监测站")
    assert summary[1][:4] == ("长兴扬子鳄国家级自然保护区", "ZJ-HZ-CX", 31.03, 119.72)
    assert "2026-11-21 15:00:00" in summary[1][4]
    assert summary[1][5:10] == ("是", 1, 1, 2, 0)
    assert "白鹭 5" in summary[1][11]
    assert summary[2][5] == "否" and summary[2][12] == "无异常"
    species = list(wb["物种统计"].iter_rows(min_row=2, values_only=True))
    assert ("长兴扬子鳄国家级自然保护区", "ZJ-HZ-CX", "白鹭", "Egretta garzetta", 5, 3) in [
        r[:6] for r in species
    ]
    assert all(r[6] == "摄像机 camera" for r in species)
    disease = list(wb["疫病异常"].iter_rows(values_only=True))
    assert len(disease) == 2
    row = dict(zip(disease[0], disease[1], strict=True))
    assert row["异常类型 Rule"] == "静止鸟类（疑似死亡或患病）"
    assert row["发现时间 Time"] == "2026-11-22 02:13:00"
    assert (row["纬度 Latitude"], row["经度 Longitude"]) == (31.03, 119.72)
    assert (row["审核人 Reviewer"], row["审核时间 Reviewed at"]) == ("张三", "2026-11-22 09:30:00")
    assert row["审核意见 Review note"] == "已现场核实，已采样送检"
    assert row["照片 Photos"] == "cam1-0213.jpg；cam1-0243.jpg（未上传 not uploaded）"
    assert row["事件编号 Event ID"] == ids["anomaly"]
    other = list(wb["其他情况"].iter_rows(min_row=2, values_only=True))
    assert [r[10] for r in other] == ["夜间人员/车辆闯入（疑似盗猎）"]
    equipment = list(wb["设备故障"].iter_rows(min_row=2, values_only=True))
    assert [r[10] for r in equipment] == ["摄像机故障", "节点存储空间不足"]
    assert wb["补报（迟到数据）"].max_row == 1
    assert wb["日报汇总"].column_dimensions["A"].width > 20


def test_equipment_fault_and_intruder_keep_the_zero_report(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """A power blip (camera_health) on a quiet day is not a wildlife abnormality."""
    events = {
        "blip": _anomaly(3, "camera_health", "camera", node="cx-02"),
        "dog": _anomaly(4, "free_roaming_dog", "dog"),
        "egret": make_event(captured_at=_at(22, 8), count=4, species=EGRET),
    }
    _store(session_factory, events, _at(22, 12))
    with session_factory() as session:
        report = build_daily_report(
            session=session, config=central_config, day=DAY, now=_at(22, 15, 10)
        )
    assert report.zero_report and not report.abnormal
    assert report.summary_zh == "无异常（零报告）；其他情况 1 起；设备故障 1 起"
    cx = report.sites[0]
    assert not cx.abnormal and cx.summary_zh == "无异常；其他情况 1 起；设备故障 1 起"
    _json, xlsx_path = write_report(report, tmp_path)
    wb = load_workbook(xlsx_path)
    info = dict(wb["报告信息"].iter_rows(min_row=2, values_only=True))
    assert info["是否发现疫病异常 Abnormal (wildlife epidemic)"] == "否"
    assert info["报告结论 Summary"].startswith("无异常（零报告）")
    assert wb["疫病异常"].max_row == 1
    blip = list(wb["设备故障"].iter_rows(min_row=2, values_only=True))
    assert [(r[9], r[10]) for r in blip] == [("cx-02", "摄像机故障")]
    assert [r[10] for r in wb["其他情况"].iter_rows(min_row=2, values_only=True)] == [
        "流浪犬进入保护区"
    ]


def test_day_without_anything_is_a_zero_report(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    _seed(session_factory)
    with session_factory() as session:
        report = build_daily_report(session=session, config=central_config, day=date(2026, 11, 25))
    assert report.zero_report and not report.abnormal
    assert report.summary_zh == "无异常（零报告）"
    assert len(report.sites) == 2
    assert all(s.summary_zh == "无异常" and not s.anomalies for s in report.sites)
    _json, xlsx_path = write_report(report, tmp_path)
    wb = load_workbook(xlsx_path)
    for sheet in SHEETS[2:]:
        assert wb[sheet].max_row == 1, sheet  # header only
    assert [r[5] for r in wb["日报汇总"].iter_rows(min_row=2, values_only=True)] == ["否", "否"]


def test_roster_gaps_are_listed_with_duty_alerting(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    data = central_config.model_dump(mode="json", exclude={"mqtt": {"password"}})
    data["alerts"]["escalation"] = {}
    data["alerts"]["providers"] = [{"type": "file", "path": str(tmp_path / "sms.jsonl")}]
    config = CentralConfig.model_validate(data)
    with session_factory.begin() as session:
        accounts.create_user(
            session=session,
            name="wang",
            password="correct horse battery",
            role=accounts.Role.STAFF,
            sites=["changxing"],
            known_sites=config.sites,
            phone="13800000001",
            now=_at(20, 9),
        )
        roster.add_shift(  # days only at changxing; nobody at all at xiazhuhu
            session=session,
            site="changxing",
            role=DutyRole.DUTY,
            user_name="wang",
            day_kind=DayKind.ANY,
            start=time(8),
            end=time(20),
        )
    with session_factory() as session:
        report = build_daily_report(session=session, config=config, day=date(2026, 11, 25))
        without = build_daily_report(session=session, config=central_config, day=date(2026, 11, 25))
    changxing, xiazhuhu = report.sites
    assert [(g.start, g.end) for g in changxing.roster_gaps] == [
        (_at(24, 20), _at(25, 8)),
        (_at(25, 20), _at(26, 8)),
    ]
    assert [(g.start, g.end) for g in xiazhuhu.roster_gaps] == [(_at(24, 15), _at(26, 15))]
    assert all(not s.roster_gaps for s in without.sites)  # no roster without duty alerting
    _json, xlsx_path = write_report(report, tmp_path)
    rows = list(load_workbook(xlsx_path)["值班空缺"].iter_rows(min_row=2, values_only=True))
    assert [(r[1], r[4]) for r in rows] == [
        ("ZJ-HZ-CX", 12.0),
        ("ZJ-HZ-CX", 12.0),
        ("ZJ-HZ-DQ", 48.0),
    ]


def test_next_day_report_gets_the_cutoff_event(
    central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> None:
    ids = _seed(session_factory)
    with session_factory() as session:
        report = build_daily_report(session=session, config=central_config, day=date(2026, 11, 23))
    assert [a.event_id for a in report.sites[0].anomalies] == [ids["cutoff"]]
    assert report.sites[0].anomalies[0].section is Section.OTHER
    assert report.zero_report  # a night intruder is 其他情况, not a wildlife abnormality


def test_report_command_with_a_date(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    _seed(session_factory)
    config_file = tmp_path / "central.yaml"
    config_file.write_text(
        json.dumps(central_config.model_dump(mode="json", exclude={"mqtt": {"password"}})),
        encoding="utf-8",
    )
    out = tmp_path / "reports"
    result = CliRunner().invoke(
        cli, ["report", "--config", str(config_file), "--date", "2026-11-22", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    paths = result.output.split()
    assert paths == [
        str(out / "daily_report_2026-11-22.json"),
        str(out / "daily_report_2026-11-22.xlsx"),
        str(out / "daily_report_2026-11-22.pdf"),
    ]
    assert load_workbook(paths[1]).sheetnames == SHEETS
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(p).name for p in paths)  # no temp
    bad = CliRunner().invoke(cli, ["report", "--config", str(config_file), "--date", "22/11/2026"])
    assert bad.exit_code != 0 and "YYYY-MM-DD" in bad.output
    both = CliRunner().invoke(
        cli, ["report", "--config", str(config_file), "--date", "2026-11-22", "--catch-up"]
    )
    assert both.exit_code != 0 and "--catch-up" in both.output


def _undeclared(value: Any, schema: dict[str, Any], defs: dict[str, Any], path: str) -> list[str]:
    """Keys of `value` that `schema` does not declare, and required keys it lacks (walking
    objects, arrays, $ref and anyOf as the report's schema uses them)."""
    if "$ref" in schema:
        return _undeclared(value, defs[schema["$ref"].rsplit("/", 1)[-1]], defs, path)
    if "anyOf" in schema:
        fits = [_undeclared(value, s, defs, path) for s in schema["anyOf"]]
        return min(fits, key=len)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        wrong = [f"{path}.{k} not declared" for k in value if k not in props]
        wrong += [f"{path}.{k} missing" for k in schema.get("required", []) if k not in value]
        for key, item in value.items():
            if key in props:
                wrong += _undeclared(item, props[key], defs, f"{path}.{key}")
        return wrong
    if isinstance(value, list):
        return [
            w
            for i, v in enumerate(value)
            for w in _undeclared(v, schema.get("items", {}), defs, f"{path}[{i}]")
        ]
    if value is None and schema.get("type") not in (None, "null"):
        return [f"{path} is null where {schema.get('type')} is declared"]
    return []


def test_the_report_json_follows_the_schema_central_publishes(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    config = _with(central_config)
    _seed(session_factory)
    with session_factory() as session:
        report = build_daily_report(session=session, config=config, day=DAY, now=_at(22, 15, 10))
    json_path, _ = write_report(report, tmp_path)
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["schema_version"] == 1 and data["sites"][0]["anomalies"]  # a busy day
    with TestClient(create_app(config=config, session_factory=session_factory)) as client:
        r = client.get("/api/reports/schema.json")  # public: no login
    assert r.status_code == 200
    schema = r.json()
    assert schema["$id"].endswith("#v1") and "2020-12" in schema["$schema"]
    assert _undeclared(data, schema, schema["$defs"], "$") == []
    # and the check bites: a key the schema does not know is found
    data["sites"][0]["anomalies"][0]["bird_flu"] = True
    assert _undeclared(data, schema, schema["$defs"], "$") == [
        "$.sites[0].anomalies[0].bird_flu not declared"
    ]
