"""Reports on file: the JSON written beside each XLSX is the record of which days were reported.

There is no reports table; `daily_report_<day>.json` in the output folder says that the report of
<day> was produced, when (`generated_at`, the as-of time of its data) and which anomalies it
listed. Catch-up and the late additions of the next report are decided from these files.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from central.reports.model import DailyReport

log = logging.getLogger(__name__)

STEM = "daily_report_{day}"
_NAME = re.compile(r"^daily_report_(\d{4}-\d{2}-\d{2})\.json$")


@dataclass(frozen=True)
class ReportRecord:
    """What a report on file tells about itself."""

    day: date
    generated_at: datetime
    window_end: datetime
    event_ids: frozenset[str]

    @property
    def final(self) -> bool:
        """Generated after its window closed (a provisional report is to be produced again)."""
        return self.generated_at >= self.window_end


def paths(out_dir: Path, day: date) -> tuple[Path, Path]:
    """(json, xlsx) paths of the report of `day`."""
    stem = STEM.format(day=day.isoformat())
    return out_dir / f"{stem}.json", out_dir / f"{stem}.xlsx"


def pdf_path(out_dir: Path, day: date) -> Path:
    """The printable PDF of the report of `day` (beside its JSON and XLSX)."""
    return out_dir / f"{STEM.format(day=day.isoformat())}.pdf"


def write_pdf(report: DailyReport, path: Path, *, evidence_dir: Path, font: Path | None) -> Path:
    """Write the PDF atomically."""
    from central.reports import pdf

    data = pdf.render_pdf(report, evidence_dir=evidence_dir, font=font)
    _atomic(path, lambda p: p.write_bytes(data))
    return path


def write_files(
    report: DailyReport, out_dir: Path, *, evidence_dir: Path, font: Path | None
) -> tuple[Path, ...]:
    """JSON, XLSX and (with a CJK font) PDF of the report in `out_dir`; without a font the PDF
    is left out and logged, the JSON and XLSX stand."""
    from central.reports.pdf import PdfError

    paths: tuple[Path, ...] = write_report(report, out_dir)
    try:
        pdf = write_pdf(report, pdf_path(out_dir, report.day), evidence_dir=evidence_dir, font=font)
    except PdfError as exc:
        log.error(
            "report %s in %s: no PDF (%s); JSON and XLSX are written", report.day, out_dir, exc
        )
        return paths
    return (*paths, pdf)


def record_of(report: DailyReport) -> ReportRecord:
    """The record of a report just written: what read_record will read back from its JSON."""
    return ReportRecord(
        day=report.day,
        generated_at=report.generated_at,
        window_end=report.window_end,
        event_ids=frozenset(
            [
                *(item.event_id for s in report.sites for item in s.anomalies + s.late_additions),
                *(f"case:{c.case_id}" for s in report.sites for c in s.cases),
                *(f"patrol:{p.patrol_id}" for s in report.sites for p in s.patrols),
            ]
        ),
    )


def read_record(path: Path) -> ReportRecord | None:
    """The record of one report JSON (any version that has the basic fields); None if unreadable."""
    match = _NAME.match(path.name)
    if match is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        ids = {
            str(item["event_id"])
            for site in data.get("sites", [])
            for key in ("anomalies", "late_additions")
            for item in site.get(key, [])
        }
        # cases and patrols listed, so that one recorded late is listed once (as 补报)
        for site in data.get("sites", []):
            ids |= {f"case:{c['case_id']}" for c in site.get("cases", [])}
            ids |= {f"patrol:{p['patrol_id']}" for p in site.get("patrols", [])}
        return ReportRecord(
            day=date.fromisoformat(match.group(1)),
            generated_at=datetime.fromisoformat(data["generated_at"]),
            window_end=datetime.fromisoformat(data["window_end"]),
            event_ids=frozenset(ids),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("report %s unreadable, treated as not produced: %s", path, exc)
        return None


def records(out_dir: Path) -> dict[date, ReportRecord]:
    """Every readable report on file, by day."""
    if not out_dir.is_dir():
        return {}
    found = (read_record(p) for p in out_dir.glob("daily_report_*.json"))
    return {r.day: r for r in found if r is not None}


def due_days(
    on_file: Mapping[date, ReportRecord], latest_closed: date, *, max_days: int
) -> list[date]:
    """Closed days after the last final report on file (`records`) that have no final report yet,
    oldest first.

    With no final report on file, only `latest_closed` (when it started is unknown). At most the
    last `max_days` of them (config report.max_catch_up_days); older days need --date."""
    finals = [d for d, r in on_file.items() if r.final and d <= latest_closed]
    first = max(finals) + timedelta(days=1) if finals else latest_closed
    days = []
    day = first
    while day <= latest_closed:
        record = on_file.get(day)
        if record is None or not record.final:
            days.append(day)
        day += timedelta(days=1)
    if len(days) > max_days:
        log.warning(
            "catch-up: %d days due, producing the last %d; %s to %s need --date",
            len(days),
            max_days,
            days[0],
            days[-max_days - 1],
        )
        days = days[-max_days:]
    return days


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file and rename, so a crash never leaves half a report."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_report(report: DailyReport, out_dir: Path) -> tuple[Path, Path]:
    """Write the XLSX, then the JSON (the record, so last); returns (json, xlsx)."""
    from central.reports import xlsx

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, xlsx_path = paths(out_dir, report.day)
    _atomic(xlsx_path, lambda p: xlsx.write_xlsx(report, p))
    text = report.model_dump_json(indent=2)
    _atomic(json_path, lambda p: p.write_text(text, encoding="utf-8"))
    return json_path, xlsx_path
