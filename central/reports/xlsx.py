"""Writes a DailyReport as XLSX: one sheet per table of central.reports.tables, header in row 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from central.reports.model import DailyReport
from central.reports.tables import Table, report_tables

HEADER_FONT = Font(bold=True)
# A cell a spreadsheet would run as a formula (CSV/XLSX injection) is written as text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A value XLSX can hold and no spreadsheet runs: control characters dropped, a leading
    formula character quoted (people's notes, case records and node texts go through here)."""
    if not isinstance(value, str):
        return value
    value = ILLEGAL_CHARACTERS_RE.sub("", value)
    return "'" + value if value.startswith(FORMULA_START) else value


WRAP = Alignment(wrap_text=True, vertical="top")


def _sheet(ws: Worksheet, table: Table, title: str) -> None:
    for col, (header, width) in enumerate(table.headers, start=1):
        cell = ws.cell(row=1, column=col, value=header)
        cell.font = HEADER_FONT
        ws.column_dimensions[get_column_letter(col)].width = width
    for r, row in enumerate(table.rows, start=2):
        for col, value in enumerate(row, start=1):
            ws.cell(row=r, column=col, value=safe_cell(value)).alignment = WRAP
    ws.freeze_panes = "A2"
    ws.oddHeader.center.text = title  # printed pages say which report they belong to
    ws.print_title_rows = "1:1"


def write_xlsx(report: DailyReport, path: Path) -> Path:
    """Write the workbook: 报告信息, 日报汇总, 物种统计, 疫病异常, 其他情况, 设备故障, 补报."""
    wb = Workbook()
    first = wb.active
    assert first is not None
    for i, table in enumerate(report_tables(report)):
        ws = first if i == 0 else wb.create_sheet()
        ws.title = table.title
        _sheet(ws, table, report.title)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path
