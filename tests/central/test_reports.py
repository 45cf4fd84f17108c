"""The 15:00 daily report: window, per-site sections, zero report, XLSX and JSON."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from central import crud
from central.commands import cli
from central.config import CentralConfig
from central.db.models import Event
from central.reports.daily import build_daily_report, report_day_for, report_window
from central.reports.xlsx import write_daily_report
from tests.central.conftest import make_event

SH = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 22)


def _at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=SH)


def _seed(session_factory: sessionmaker[Session]) -> dict[str, str]:
    crane = {"scientific_name": "Grus japonensis", "chinese_name": "丹顶鹤", "confidence": 0.9}
    egret = {"scientific_name": "Egretta garzetta", "chinese_name": "白鹭", "confidence": 0.9}
    events = {
        "before": make_event(captured_at=_at(21, 14, 59, 59), count=100),  # previous report
        "start": make_event(captured_at=_at(21, 15), count=2, species=egret),
        "obs": make_event(captured_at=_at(22, 8), count=3, species=egret),
        "crane": make_event(captured_at=_at(22, 9), count=1, species=crane),
        "person": make_event(captured_at=_at(22, 1), category="person", count=1),
        "anomaly": make_event(
            captured_at=_at(22, 2, 13),
            kind="anomaly",
            category="bird",
            rule="motionless_bird",
            severity="alert",
            species=egret,
            message_zh="白鹭卧地不动超过30分钟",
        ),
        "dismissed": make_event(
            captured_at=_at(22, 3), kind="anomaly", category="dog", rule="free_roaming_dog"
        ),
        "cutoff": make_event(  # exactly 15:00: belongs to the next report
            captured_at=_at(22, 15), kind="anomaly", category="person", rule="night_intrusion"
        ),
    }
    with session_factory.begin() as session:
        for event in events.values():
            crud.insert_event(session=session, payload=event, received_at=_at(22, 15))
        session.execute(
            sa.update(Event)
            .where(Event.event_id == str(events["dismissed"].event_id))
            .values(review_status="dismissed")
        )
    return {k: str(v.event_id) for k, v in events.items()}


def test_window_and_report_day(central_config: CentralConfig) -> None:
    start, end = report_window(config=central_config, day=DAY)
    assert (start, end) == (_at(21, 15), _at(22, 15))
    assert report_day_for(_at(22, 14, 59, 59), central_config) == DAY
    assert report_day_for(_at(22, 15), central_config) == date(2026, 11, 23)


def test_day_with_anomalies(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    ids = _seed(session_factory)
    with session_factory() as session:
        report = build_daily_report(session=session, config=central_config, day=DAY)
    assert report.abnormal and not report.zero_report
    assert [s.site for s in report.sites] == ["changxing", "xiazhuhu"]
    cx, xz = report.sites
    assert cx.name_zh == "长兴扬子鳄国家级自然保护区" and cx.station_code == "ZJ-HZ-CX"
    assert cx.abnormal and cx.abnormal_zh == "是"
    assert [a.event_id for a in cx.anomalies] == [ids["anomaly"]]  # not dismissed, not 15:00
    anomaly = cx.anomalies[0]
    assert anomaly.rule_zh == "静止鸟类（疑似死亡或患病）"
    assert anomaly.species_chinese == "白鹭"
    assert anomaly.time == _at(22, 2, 13)
    assert anomaly.message == "白鹭卧地不动超过30分钟"
    assert {c.category: c.count for c in cx.categories} == {"bird": 6, "person": 1}
    assert {s.chinese_name: s.count for s in cx.species} == {"白鹭": 5, "丹顶鹤": 1}
    assert not xz.abnormal and xz.summary_zh == "无异常" and xz.abnormal_zh == "否"
    assert xz.categories == [] and xz.anomalies == []

    json_path, xlsx_path = write_daily_report(report, tmp_path / "out")
    assert json_path.name == "daily_report_2026-11-22.json"
    assert xlsx_path.name == "daily_report_2026-11-22.xlsx"
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["sites"][1]["summary_zh"] == "无异常"
    wb = load_workbook(xlsx_path)
    assert wb.sheetnames == ["日报汇总", "异常明细"]
    summary = list(wb["日报汇总"].iter_rows(values_only=True))
    assert summary[0][0].startswith("监测站")
    assert summary[1][0] == "长兴扬子鳄国家级自然保护区" and summary[1][3] == "是"
    assert "白鹭 5" in summary[1][5]
    assert summary[2][3] == "否" and summary[2][6] == "无异常"
    assert "2026-11-21 15:00:00" in summary[1][2]
    details = list(wb["异常明细"].iter_rows(values_only=True))
    assert len(details) == 2
    assert details[1][3] == "静止鸟类（疑似死亡或患病）"
    assert details[1][1] == "2026-11-22 02:13:00"
    assert wb["日报汇总"].column_dimensions["A"].width > 20


def test_day_without_anything_is_a_zero_report(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    _seed(session_factory)
    with session_factory() as session:
        report = build_daily_report(session=session, config=central_config, day=date(2026, 11, 25))
    assert report.zero_report and not report.abnormal
    assert "无异常" in report.summary_zh
    assert len(report.sites) == 2
    assert all(s.summary_zh == "无异常" and not s.anomalies for s in report.sites)
    _json, xlsx_path = write_daily_report(report, tmp_path)
    wb = load_workbook(xlsx_path)
    assert wb["异常明细"].max_row == 1  # header only
    assert [r[3] for r in wb["日报汇总"].iter_rows(min_row=2, values_only=True)] == ["否", "否"]


def test_next_day_report_gets_the_cutoff_event(
    central_config: CentralConfig, session_factory: sessionmaker[Session]
) -> None:
    ids = _seed(session_factory)
    with session_factory() as session:
        report = build_daily_report(session=session, config=central_config, day=date(2026, 11, 23))
    assert [a.event_id for a in report.sites[0].anomalies] == [ids["cutoff"]]


def test_report_command(
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
    ]
    bad = CliRunner().invoke(cli, ["report", "--config", str(config_file), "--date", "22/11/2026"])
    assert bad.exit_code != 0
