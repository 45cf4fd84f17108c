"""Writes a DailyReport as XLSX (sheets 日报汇总 and 异常明细) and JSON for re-keying upstream."""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from central import messages
from central.reports.daily import DailyReport, SiteSection

HEADER_FONT = Font(bold=True)
WRAP = Alignment(wrap_text=True, vertical="top")


def _counts_text(section: SiteSection) -> str:
    parts = [f"{c.category_zh} {c.count}" for c in section.categories]
    parts += [f"{s.chinese_name or s.scientific_name} {s.count}" for s in section.species]
    return "；".join(parts) if parts else messages.NONE_SEEN


def _window_text(section: SiteSection) -> str:
    return messages.REPORT_WINDOW.format(
        start=messages.long_time(section.window_start), end=messages.long_time(section.window_end)
    )


def _sheet(ws: Worksheet, headers: list[tuple[str, int]], rows: list[list[object]]) -> None:
    for col, (title, width) in enumerate(headers, start=1):
        cell = ws.cell(row=1, column=col, value=title)
        cell.font = HEADER_FONT
        ws.column_dimensions[get_column_letter(col)].width = width
    for r, row in enumerate(rows, start=2):
        for col, value in enumerate(row, start=1):
            ws.cell(row=r, column=col, value=value).alignment = WRAP
    ws.freeze_panes = "A2"


def write_xlsx(report: DailyReport, path: Path) -> Path:
    """Write the two-sheet workbook."""
    wb = Workbook()
    summary = wb.active
    assert summary is not None
    summary.title = messages.SHEET_SUMMARY
    _sheet(
        summary,
        messages.SUMMARY_HEADERS,
        [
            [
                s.name_zh,
                s.station_code,
                _window_text(s),
                s.abnormal_zh,
                len(s.anomalies),
                _counts_text(s),
                s.summary_zh,
            ]
            for s in report.sites
        ],
    )
    details = wb.create_sheet(messages.SHEET_ANOMALIES)
    _sheet(
        details,
        messages.ANOMALY_HEADERS,
        [
            [
                s.name_zh,
                messages.long_time(a.time),
                a.camera,
                a.rule_zh,
                a.category_zh,
                a.species_chinese or a.species_scientific or "",
                a.count,
                a.severity_zh,
                a.review_zh,
                a.message,
                a.event_id,
            ]
            for s in report.sites
            for a in s.anomalies
        ],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def write_daily_report(report: DailyReport, out_dir: Path) -> tuple[Path, Path]:
    """Write daily_report_<day>.json and .xlsx into out_dir; returns (json, xlsx)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"daily_report_{report.day.isoformat()}"
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    xlsx_path = write_xlsx(report, out_dir / f"{stem}.xlsx")
    return json_path, xlsx_path
