"""The daily report laid out as titled tables of text and numbers, for any renderer (XLSX, PDF).

Each table has one header row and flat cells so a person can copy a row into the national web
system (陆生野生动物疫源疫病监测防控信息管理系统) field by field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from central import messages
from central.reports.model import (
    AnomalyItem,
    CaseRecord,
    DailyReport,
    Section,
    SiteSection,
    SpeciesCount,
)

Cell = str | int | float | None


@dataclass(frozen=True)
class Table:
    """One sheet (XLSX) or one table (PDF): a title, (header, width) pairs and rows."""

    title: str
    headers: list[tuple[str, int]]
    rows: list[list[Cell]]


def _time(value: datetime | None) -> str:
    return messages.long_time(value) if value is not None else ""


def _window(start: datetime, end: datetime) -> str:
    return messages.REPORT_WINDOW.format(start=_time(start), end=_time(end))


def _counts_text(section: SiteSection) -> str:
    parts = [f"{c.category_zh} {c.count}" for c in section.categories]
    parts += [f"{s.chinese_name or s.scientific_name} {s.count}" for s in section.species]
    return "；".join(parts) if parts else messages.NONE_SEEN


def _photos_text(item: AnomalyItem) -> str:
    return "；".join(
        p.name if p.uploaded else f"{p.name}{messages.PHOTO_NOT_UPLOADED}" for p in item.photos
    )


def info_table(report: DailyReport) -> Table:
    """Title, station, window, generation time and the verdict, one item per row."""
    rows: list[list[Cell]] = [
        [messages.INFO_TITLE, f"{report.title} / {report.title_en}"],
        [messages.INFO_STATION, report.station_name],
        [messages.INFO_STATION_CODE, report.station_code],
        [messages.INFO_DAY, report.day.isoformat()],
        [messages.INFO_WINDOW, _window(report.window_start, report.window_end)],
        [messages.INFO_CUTOFF, f"{report.cutoff} ({report.timezone})"],
        [messages.INFO_GENERATED, _time(report.generated_at)],
        [messages.INFO_STATUS, messages.PROVISIONAL if report.provisional else messages.INFO_FINAL],
        [messages.INFO_ABNORMAL, messages.YES if report.abnormal else messages.NO],
        [messages.INFO_SUMMARY, report.summary_zh],
        [messages.INFO_LATE_SINCE, report.late_since_zh],
    ]
    return Table(messages.SHEET_INFO, messages.INFO_HEADERS, rows)


def summary_table(report: DailyReport) -> Table:
    """One row per site."""
    rows: list[list[Cell]] = [
        [
            s.name_zh,
            s.station_code,
            s.latitude,
            s.longitude,
            _window(s.window_start, s.window_end),
            s.abnormal_zh,
            len(s.in_section(Section.DISEASE)),
            len(s.in_section(Section.OTHER)),
            len(s.in_section(Section.EQUIPMENT)),
            len(s.late_additions),
            s.observation_events,
            _counts_text(s),
            s.summary_zh,
        ]
        for s in report.sites
    ]
    return Table(messages.SHEET_SUMMARY, messages.SUMMARY_HEADERS, rows)


def species_cells(sp: SpeciesCount) -> list[Cell]:
    """Name, scientific name, count, most at once, how observed, cameras (XLSX and PDF)."""
    return [
        sp.chinese_name,
        sp.scientific_name,
        sp.count,
        sp.max_count,
        sp.method_zh,
        "、".join(sp.cameras),
    ]


def species_table(report: DailyReport) -> Table:
    """One row per site and species, with how it was observed."""
    rows: list[list[Cell]] = [
        [s.name_zh, s.station_code, *species_cells(sp)] for s in report.sites for sp in s.species
    ]
    return Table(messages.SHEET_SPECIES, messages.SPECIES_HEADERS, rows)


def _anomaly_row(s: SiteSection, a: AnomalyItem) -> list[Cell]:
    return [
        s.name_zh,
        s.station_code,
        s.latitude,
        s.longitude,
        a.report_day.isoformat(),
        a.section_zh,
        _time(a.time),
        _time(a.received_at),
        a.camera,
        a.node,
        a.rule_zh,
        a.category_zh,
        a.species_chinese or "",
        a.species_scientific or "",
        a.count,
        a.severity_zh,
        a.review_zh,
        a.reviewer or "",
        _time(a.reviewed_at),
        a.review_note or "",
        a.message,
        _photos_text(a),
        a.event_id,
    ]


def anomaly_tables(report: DailyReport) -> list[Table]:
    """疫病异常, 其他情况, 设备故障 (captured in the window), then 补报（迟到数据）."""
    tables = [
        Table(
            messages.section_zh(section),
            messages.ANOMALY_HEADERS,
            [_anomaly_row(s, a) for s in report.sites for a in s.in_section(section)],
        )
        for section in Section  # in the order the enum declares them
    ]
    late = [_anomaly_row(s, a) for s in report.sites for a in s.late_additions]
    tables.append(Table(messages.SHEET_LATE, messages.ANOMALY_HEADERS, late))
    return tables


def roster_table(report: DailyReport) -> Table:
    """Spans with no reachable duty officer, per site (window and the day after)."""
    rows: list[list[Cell]] = [
        [
            s.name_zh,
            s.station_code,
            _time(g.start),
            _time(g.end),
            round((g.end - g.start).total_seconds() / 3600, 1),
        ]
        for s in report.sites
        for g in s.roster_gaps
    ]
    return Table(messages.SHEET_ROSTER, messages.ROSTER_HEADERS, rows)


def case_fields(c: CaseRecord) -> dict[str, str]:
    """A case's fields as text, Chinese, in the order the bureau's form asks for them."""
    signs = "、".join(c.signs_zh + ([c.signs_note] if c.signs_note else []))
    contact = messages.YES_NO_UNKNOWN[c.human_contact]
    poultry = (
        messages.NOT_RECORDED
        if c.poultry_farms_3km is None
        else f"{c.poultry_farms_3km} 个" + (f"；{c.poultry_check}" if c.poultry_check else "")
    )
    samples = "；".join(
        f"{s.kind_zh} {s.sample_id} {s.laboratory} {s.result or messages.SAMPLE_PENDING}"
        for s in c.samples
    ) or (f"未采样：{c.no_sample_reason}" if c.no_sample_reason else messages.NOT_RECORDED)
    measures = "、".join(c.measures_zh + ([c.measures_note] if c.measures_note else []))
    return {
        "found": f"{_time(c.found_at)} {c.location}",
        "species": f"{c.species_chinese or messages.NOT_RECORDED} {c.species_scientific or ''}"
        + (f"（国家{c.protection_level}级）" if c.protection_level else ""),
        "counts": f"患病 {c.sick_count}，死亡 {c.dead_count}，同群 "
        + (str(c.flock_count) if c.flock_count is not None else messages.NOT_RECORDED),
        "signs": signs or messages.NOT_RECORDED,
        "origin": c.origin_zh or messages.NOT_RECORDED,
        "contact": contact + (f"；{c.human_contact_note}" if c.human_contact_note else ""),
        "poultry": poultry,
        "samples": samples,
        "measures": measures or messages.NOT_RECORDED,
        "judgement": c.judgement or messages.NOT_RECORDED,
        "missing": "、".join(c.missing_zh),
    }


def case_table(report: DailyReport) -> Table:
    """One row per case (异常情况), every field the bureau asks for."""
    rows: list[list[Cell]] = []
    for s in report.sites:
        for c in s.cases:
            f = case_fields(c)
            rows.append(
                [
                    s.name_zh,
                    c.case_id,
                    _time(c.found_at),
                    c.location,
                    c.species_chinese or "",
                    c.species_scientific or "",
                    c.protection_level or "",
                    c.sick_count,
                    c.dead_count,
                    c.flock_count,
                    f["signs"],
                    f["origin"],
                    f["contact"],
                    f["poultry"],
                    f["samples"],
                    f["measures"],
                    f["judgement"],
                    f["missing"],
                    c.event_id or "",
                ]
            )
    return Table(messages.SHEET_CASES, messages.CASE_HEADERS, rows)


def sightings_text(sightings: list[tuple[str, int]]) -> str:
    return "；".join(f"{name} {count}" for name, count in sightings)


def patrol_table(report: DailyReport) -> Table:
    rows: list[list[Cell]] = [
        [
            s.name_zh,
            _time(p.started_at),
            _time(p.ended_at),
            p.observers,
            p.route,
            p.weather,
            sightings_text([(x.species_chinese, x.count) for x in p.sightings]),
            p.note,
            len(p.photos),
        ]
        for s in report.sites
        for p in s.patrols
    ]
    return Table(messages.SHEET_PATROLS, messages.PATROL_HEADERS, rows)


def report_tables(report: DailyReport) -> list[Table]:
    """Every table of the report, in reading order."""
    return [
        info_table(report),
        summary_table(report),
        species_table(report),
        *anomaly_tables(report),
        case_table(report),
        patrol_table(report),
        roster_table(report),
    ]
