"""The daily report: per configured site, what was seen and what was abnormal in the window."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from central import crud, messages
from central.config import CentralConfig
from central.db.models import REVIEW_DISMISSED, Event


class CategoryCount(BaseModel):
    """Sum of `count` over observation events of one category."""

    category: str
    category_zh: str
    count: int


class SpeciesCount(BaseModel):
    """Sum of `count` over observation events naming one species."""

    scientific_name: str
    chinese_name: str
    count: int


class AnomalyItem(BaseModel):
    """One abnormal finding in the window."""

    event_id: str
    time: datetime = Field(description="capture time in the report's timezone")
    camera: str
    node: str
    rule: str | None
    rule_zh: str
    category: str
    category_zh: str
    species_scientific: str | None
    species_chinese: str | None
    count: int
    severity: str
    severity_zh: str
    review_status: str
    review_zh: str
    message: str


class SiteSection(BaseModel):
    """The report of one monitoring point."""

    site: str
    name_zh: str
    name_en: str
    station_code: str
    latitude: float | None = None
    longitude: float | None = None
    window_start: datetime
    window_end: datetime
    observation_events: int
    categories: list[CategoryCount]
    species: list[SpeciesCount]
    anomalies: list[AnomalyItem]
    abnormal: bool
    abnormal_zh: str = Field(description="是 / 否")
    summary_zh: str = Field(description="无异常 or 发现异常 n 起")


class DailyReport(BaseModel):
    """The 15:00 report: one section per configured site (plus any unconfigured site with data)."""

    day: date
    station_name: str
    station_code: str
    timezone: str
    cutoff: str
    window_start: datetime
    window_end: datetime
    generated_at: datetime
    abnormal: bool
    zero_report: bool = Field(description="true when no site had anything abnormal (无异常)")
    summary_zh: str
    sites: list[SiteSection]


def report_window(*, config: CentralConfig, day: date) -> tuple[datetime, datetime]:
    """[previous day cut-off, this day cut-off) as aware local datetimes."""
    tz = ZoneInfo(config.timezone)
    end = datetime.combine(day, config.report.cutoff_time, tzinfo=tz)
    start = datetime.combine(day - timedelta(days=1), config.report.cutoff_time, tzinfo=tz)
    return start, end


def _anomaly(event: Event, tz: ZoneInfo) -> AnomalyItem:
    return AnomalyItem(
        event_id=event.event_id,
        time=event.captured_at.astimezone(tz),
        camera=event.camera,
        node=event.node,
        rule=event.rule,
        rule_zh=messages.rule_zh(event.rule),
        category=event.category,
        category_zh=messages.category_zh(event.category),
        species_scientific=event.species_scientific,
        species_chinese=event.species_chinese,
        count=event.count,
        severity=event.severity,
        severity_zh=messages.severity_zh(event.severity),
        review_status=event.review_status,
        review_zh=messages.review_zh(event.review_status),
        message=event.message_zh or event.message_en,
    )


def _section(
    *,
    site: str,
    events: list[Event],
    config: CentralConfig,
    start: datetime,
    end: datetime,
) -> SiteSection:
    tz = ZoneInfo(config.timezone)
    categories: dict[str, int] = defaultdict(int)
    species: dict[tuple[str, str], int] = defaultdict(int)
    observations = 0
    anomalies: list[AnomalyItem] = []
    for event in events:
        if event.kind == "observation":
            observations += 1
            categories[event.category] += event.count
            if event.species_scientific:
                species[(event.species_scientific, event.species_chinese or "")] += event.count
        elif event.kind == "anomaly" and event.review_status != REVIEW_DISMISSED:
            anomalies.append(_anomaly(event, tz))
    cfg = config.sites.get(site)
    abnormal = bool(anomalies)
    return SiteSection(
        site=site,
        name_zh=cfg.name_zh if cfg else messages.UNCONFIGURED_SITE.format(site=site),
        name_en=cfg.name_en if cfg else site,
        station_code=cfg.station_code if cfg else "",
        latitude=cfg.latitude if cfg else None,
        longitude=cfg.longitude if cfg else None,
        window_start=start,
        window_end=end,
        observation_events=observations,
        categories=[
            CategoryCount(category=c, category_zh=messages.category_zh(c), count=n)
            for c, n in sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        species=[
            SpeciesCount(scientific_name=sci, chinese_name=zh, count=n)
            for (sci, zh), n in sorted(species.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        anomalies=anomalies,
        abnormal=abnormal,
        abnormal_zh=messages.YES if abnormal else messages.NO,
        summary_zh=messages.anomaly_summary(len(anomalies)),
    )


def report_day_for(moment: datetime, config: CentralConfig) -> date:
    """The report day whose window contains `moment` (at or after the cut-off → the next day)."""
    local = moment.astimezone(ZoneInfo(config.timezone))
    if local.time() >= config.report.cutoff_time:
        return local.date() + timedelta(days=1)
    return local.date()


def write_daily_report(report: DailyReport, out_dir: Path) -> tuple[Path, Path]:
    """Write daily_report_<day>.json and .xlsx (see central.reports.xlsx); returns (json, xlsx)."""
    from central.reports import xlsx

    return xlsx.write_daily_report(report, out_dir)


def build_daily_report(*, session: Session, config: CentralConfig, day: date) -> DailyReport:
    """Build the report due at `day`'s cut-off; every configured site gets a section."""
    start, end = report_window(config=config, day=day)
    by_site: dict[str, list[Event]] = {site: [] for site in config.sites}
    for event in crud.events_in_window(session=session, start=start, end=end):
        by_site.setdefault(event.site, []).append(event)
    sections = [
        _section(site=site, events=events, config=config, start=start, end=end)
        for site, events in by_site.items()
    ]
    total = sum(len(s.anomalies) for s in sections)
    return DailyReport(
        day=day,
        station_name=config.report.station_name,
        station_code=config.report.station_code,
        timezone=config.timezone,
        cutoff=config.report.cutoff,
        window_start=start,
        window_end=end,
        generated_at=datetime.now(UTC).astimezone(ZoneInfo(config.timezone)),
        abnormal=total > 0,
        zero_report=total == 0,
        summary_zh=messages.ZERO_REPORT if total == 0 else messages.anomaly_summary(total),
        sites=sections,
    )
