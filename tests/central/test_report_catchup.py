"""Missed and late: catch-up of closed windows from the reports on file, and late additions."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from central import crud
from central.commands import cli
from central.config import CentralConfig
from central.db.models import Event
from central.reports import record
from central.reports.daily import latest_closed_day, produce, report_window
from central.reports.model import Section
from tests.central.conftest import make_event

SH = ZoneInfo("Asia/Shanghai")
EGRET = {"scientific_name": "Egretta garzetta", "chinese_name": "白鹭", "confidence": 0.9}


def _at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=SH)


def _store(session_factory: sessionmaker[Session], received_at: datetime, **fields: Any) -> str:
    event = make_event(kind="anomaly", **fields)
    with session_factory.begin() as session:
        crud.insert_event(session=session, payload=event, received_at=received_at)
    return str(event.event_id)


def _produce(
    session_factory: sessionmaker[Session], config: CentralConfig, day: date, out: Path
) -> dict[str, Any]:
    """Produce the report of `day` as the timer would: at cut-off + grace."""
    now = report_window(config=config, day=day)[1] + config.report.grace
    with session_factory() as session:
        json_path, *_files = produce(
            session=session,
            config=config,
            day=day,
            out_dir=out,
            reports=record.records(out),
            now=now,
        )
    data: dict[str, Any] = json.loads(json_path.read_text(encoding="utf-8"))
    return data


def _config_file(config: CentralConfig, tmp_path: Path) -> Path:
    path = tmp_path / "central.yaml"
    path.write_text(
        json.dumps(config.model_dump(mode="json", exclude={"mqtt": {"password"}})),
        encoding="utf-8",
    )
    return path


def test_late_event_is_listed_in_the_next_report(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    out = tmp_path / "reports"
    bird = {"category": "bird", "rule": "motionless_bird", "species": EGRET, "severity": "alert"}
    in_time = _store(session_factory, _at(22, 15, 5), captured_at=_at(22, 14, 57), seq=1, **bird)
    first = _produce(session_factory, central_config, date(2026, 11, 22), out)
    assert [a["event_id"] for a in first["sites"][0]["anomalies"]] == [in_time]

    # Captured 14:58 before the 15:00 cut-off, stored 15:20 after the 15:10 report was built.
    late = _store(session_factory, _at(22, 15, 20), captured_at=_at(22, 14, 58), seq=2, **bird)
    # Received 15:09:59 but committed after the report read the database (ingest batching).
    racing = _store(session_factory, _at(22, 15, 9, 59), captured_at=_at(22, 14, 59), seq=3, **bird)
    fault = _store(
        session_factory,
        _at(23, 9),
        captured_at=_at(22, 14, 50),
        seq=4,
        category="camera",
        rule="camera_health",
    )
    dismissed = _store(session_factory, _at(23, 9), captured_at=_at(22, 14), seq=5, **bird)
    with session_factory.begin() as session:
        session.execute(
            sa.update(Event).where(Event.event_id == dismissed).values(review_status="dismissed")
        )
    today = _store(session_factory, _at(23, 10), captured_at=_at(23, 10), seq=6, **bird)

    second = _produce(session_factory, central_config, date(2026, 11, 23), out)
    cx = second["sites"][0]
    assert [a["event_id"] for a in cx["anomalies"]] == [today]
    assert [a["event_id"] for a in cx["late_additions"]] == [fault, late, racing]
    assert all(a["late"] and a["report_day"] == "2026-11-22" for a in cx["late_additions"])
    assert second["abnormal"] and cx["abnormal"]
    assert second["summary_zh"] == "发现疫病异常 3 起（含补报 2 起）；补报其他情况/设备故障 1 起"
    assert "2026-11-22" in second["late_since_zh"] and "15:10:00" in second["late_since_zh"]

    wb = load_workbook(Path(out / "daily_report_2026-11-23.xlsx"))
    rows = list(wb["补报（迟到数据）"].iter_rows(values_only=True))
    table = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert [r["事件编号 Event ID"] for r in table] == [fault, late, racing]
    assert [r["板块 Section"] for r in table] == ["设备故障", "疫病异常", "疫病异常"]
    assert table[1]["发现时间 Time"] == "2026-11-22 14:58:00"
    assert table[1]["接收时间 Received"] == "2026-11-22 15:20:00"
    assert table[1]["所属日报 Report day"] == "2026-11-22"
    assert [r[22] for r in wb["疫病异常"].iter_rows(min_row=2, values_only=True)] == [today]

    third = _produce(session_factory, central_config, date(2026, 11, 24), out)
    assert third["sites"][0]["late_additions"] == []  # each late event is reported once
    assert third["zero_report"] and third["summary_zh"] == "无异常（零报告）"


def test_late_equipment_fault_alone_keeps_the_zero_report(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    out = tmp_path / "reports"
    _produce(session_factory, central_config, date(2026, 11, 22), out)
    fault = _store(
        session_factory,
        _at(22, 16),
        captured_at=_at(22, 14, 59),
        category="camera",
        rule="storage_low",
    )
    data = _produce(session_factory, central_config, date(2026, 11, 23), out)
    assert data["zero_report"] and not data["abnormal"]
    assert data["summary_zh"] == "无异常（零报告）；补报其他情况/设备故障 1 起"
    late = data["sites"][0]["late_additions"]
    assert [(a["event_id"], a["section"]) for a in late] == [(fault, Section.EQUIPMENT.value)]


def test_due_days_from_reports_on_file(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    out = tmp_path / "reports"
    closed = date(2026, 11, 25)

    def due(max_days: int = central_config.report.max_catch_up_days) -> list[date]:
        return record.due_days(record.records(out), closed, max_days=max_days)

    assert due() == [closed]  # nothing on file: only the latest
    _produce(session_factory, central_config, date(2026, 11, 21), out)
    assert due() == [date(2026, 11, d) for d in (22, 23, 24, 25)]
    assert due(2) == [date(2026, 11, 24), date(2026, 11, 25)]
    # A report built before its window closed (the old timer after boot, the demo) is provisional.
    with session_factory() as session:
        produce(
            session=session,
            config=central_config,
            day=date(2026, 11, 23),
            out_dir=out,
            reports=record.records(out),
            now=_at(23, 9),
        )
    provisional = record.read_record(out / "daily_report_2026-11-23.json")
    assert provisional is not None and not provisional.final
    assert json.loads((out / "daily_report_2026-11-23.json").read_text())["provisional"]
    _produce(session_factory, central_config, date(2026, 11, 24), out)
    assert due() == [date(2026, 11, 25)]  # days after the last final
    (out / "daily_report_2026-11-25.json").write_text("{not json", encoding="utf-8")
    assert due() == [closed]  # unreadable: not produced
    _produce(session_factory, central_config, closed, out)
    assert due() == []


def test_catch_up_command_produces_every_missed_closed_day(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Server down for two report times: after boot, each missed day is produced, the open
    window is not, and a second run has nothing to do."""
    out = tmp_path / "reports"
    closed = latest_closed_day(datetime.now(UTC), central_config)
    last = closed - timedelta(days=3)
    _produce(session_factory, central_config, last, out)
    start, end = report_window(config=central_config, day=closed - timedelta(days=1))
    missed = _store(
        session_factory, end, captured_at=start + timedelta(hours=3), rule="mortality_cluster"
    )
    config_file = _config_file(central_config, tmp_path)
    args = ["report", "--config", str(config_file), "--catch-up", "--out", str(out)]

    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    now_closed = latest_closed_day(datetime.now(UTC), central_config)
    expected = [now_closed - timedelta(days=n) for n in range((now_closed - last).days - 1, -1, -1)]
    assert [Path(p).name for p in result.output.split()] == [
        name
        for d in expected
        for name in (f"daily_report_{d}.json", f"daily_report_{d}.xlsx", f"daily_report_{d}.pdf")
    ]
    for d in expected:
        data = json.loads((out / f"daily_report_{d}.json").read_text(encoding="utf-8"))
        assert not data["provisional"]
        listed = [a["event_id"] for a in data["sites"][0]["anomalies"]]
        assert listed == ([missed] if d == closed - timedelta(days=1) else [])
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and again.output == ""


def test_catch_up_produces_at_most_the_configured_number_of_days(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """report.max_catch_up_days bounds a catch-up to the most recent days; older need --date."""
    out = tmp_path / "reports"
    closed = latest_closed_day(datetime.now(UTC), central_config)
    _produce(session_factory, central_config, closed - timedelta(days=5), out)
    report = central_config.report.model_copy(update={"max_catch_up_days": 2})
    config_file = _config_file(central_config.model_copy(update={"report": report}), tmp_path)
    args = ["report", "--config", str(config_file), "--catch-up", "--out", str(out)]

    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    now_closed = latest_closed_day(datetime.now(UTC), central_config)
    expected = [now_closed - timedelta(days=1), now_closed]
    assert [Path(p).name for p in result.output.split()] == [
        name
        for d in expected
        for name in (f"daily_report_{d}.json", f"daily_report_{d}.xlsx", f"daily_report_{d}.pdf")
    ]


def test_report_without_date_is_the_most_recent_closed_window(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    out = tmp_path / "reports"
    config_file = _config_file(central_config, tmp_path)
    before = datetime.now(UTC)
    result = CliRunner().invoke(
        cli, ["report", "--config", str(config_file), "--out", str(out), "--grace-minutes", "0"]
    )
    assert result.exit_code == 0, result.output
    json_path = Path(result.output.split()[0])
    data = json.loads(json_path.read_text(encoding="utf-8"))
    window_end = datetime.fromisoformat(data["window_end"])
    assert window_end <= datetime.now(UTC)  # closed
    assert window_end > before - timedelta(days=1)  # and the most recent one
    assert not data["provisional"] and data["zero_report"]


def test_grace_minutes_option_overrides_the_config(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """With report.grace_minutes at its maximum (a day) the most recent closed window is the one
    before; --grace-minutes 0 on the command line moves it forward again."""
    report = central_config.report.model_copy(update={"grace_minutes": 1440})
    config_file = _config_file(central_config.model_copy(update={"report": report}), tmp_path)
    days = []
    for extra in ([], ["--grace-minutes", "0"]):
        out = tmp_path / f"reports{len(extra)}"
        args = ["report", "--config", str(config_file), "--out", str(out), *extra]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        days.append(date.fromisoformat(Path(result.output.split()[0]).stem.split("_")[-1]))
    assert days[1] - days[0] == timedelta(days=1)


def test_catch_up_lists_a_late_event_once(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Catch-up builds several reports within seconds; a late event goes into the first only."""
    out = tmp_path / "reports"
    _produce(session_factory, central_config, date(2026, 11, 22), out)
    late = _store(
        session_factory,
        _at(25, 15, 20),
        captured_at=_at(22, 14, 59),
        category="bird",
        rule="motionless_bird",
    )
    found = {}
    on_file = record.records(out)  # read once, as the catch-up command does
    for n, day in enumerate((23, 24, 25)):
        with session_factory() as session:
            json_path, *_ = produce(
                session=session,
                config=central_config,
                day=date(2026, 11, day),
                out_dir=out,
                reports=on_file,
                now=_at(25, 15, 21, n),
            )
        data = json.loads(json_path.read_text(encoding="utf-8"))
        found[day] = [a["event_id"] for a in data["sites"][0]["late_additions"]]
    assert found == {23: [late], 24: [], 25: []}


def test_produce_keeps_the_records_as_the_folder_would_give_them(
    central_config: CentralConfig, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """The record produce adds to `reports` is the one the JSON it wrote reads back as, so a
    catch-up that reads the folder once decides as one that reads it before every report."""
    out = tmp_path / "reports"
    bird = _store(session_factory, _at(22, 16), captured_at=_at(22, 14), rule="motionless_bird")
    on_file: dict[date, record.ReportRecord] = {}
    for day in (date(2026, 11, 22), date(2026, 11, 23)):
        with session_factory() as session:
            produce(
                session=session,
                config=central_config,
                day=day,
                out_dir=out,
                reports=on_file,
                now=_at(23, 15, 10),
            )
    assert on_file == record.records(out)
    assert on_file[date(2026, 11, 22)].event_ids == {bird}
