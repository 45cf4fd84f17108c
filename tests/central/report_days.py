"""Report days built as data (no database): a zero day and a busy day with evidence photos, for
the PDF tests and benchmarks/report_pdf.py (the sample PDFs a person looks at)."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from central import messages
from central.reports.model import (
    AnomalyItem,
    DailyReport,
    Photo,
    Section,
    SignOff,
    SiteSection,
    SpeciesCount,
    section_of,
)

SH = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 12, 3)
START = datetime(2026, 12, 2, 15, tzinfo=SH)
END = datetime(2026, 12, 3, 15, tzinfo=SH)
SPECIES = [
    ("Egretta garzetta", "白鹭"),
    ("Nipponia nippon", "朱鹮"),
    ("Anser cygnoides", "鸿雁"),
    ("Ardea cinerea", "苍鹭"),
    ("Anas platyrhynchos", "绿头鸭"),
]
RULES = [
    "motionless_bird",
    "mortality_cluster",
    "night_intrusion",
    "free_roaming_dog",
    "camera_health",
]
PHOTOS = ["ct_md_nacti_heron_flight.jpg", "ct_md_pheasant.jpg", "bird_coral_bird.jpg"]


def _site(site: str, name: str, anomalies: list[AnomalyItem], signed: bool) -> SiteSection:
    disease = sum(a.section is Section.DISEASE for a in anomalies)
    species = (
        [
            SpeciesCount(
                scientific_name=sci,
                chinese_name=zh,
                count=40 - 7 * i,
                max_count=9 - i,
                method_zh=messages.OBSERVED_BY_CAMERA,
                cameras=["cam1", "cam2"],
            )
            for i, (sci, zh) in enumerate(SPECIES)
        ]
        if anomalies
        else []
    )
    return SiteSection(
        site=site,
        name_zh=name,
        name_en=site,
        station_code="330521",
        window_start=START,
        window_end=END,
        observation_events=len(anomalies) * 5,
        categories=[],
        species=species,
        anomalies=anomalies,
        abnormal=disease > 0,
        abnormal_zh=messages.YES if disease else messages.NO,
        summary_zh=messages.DISEASE_SUMMARY.format(count=disease) if disease else "无异常",
        signoff=SignOff(
            reporter="李监测",
            reporter_phone="13800138000",
            auditor="王站长",
            signed_at=END - timedelta(minutes=20),
            report_as_of=END - timedelta(minutes=30),
        )
        if signed
        else None,
    )


def _report(sites: list[SiteSection]) -> DailyReport:
    abnormal = any(s.abnormal for s in sites)
    return DailyReport(
        day=DAY,
        title=messages.report_title(station="德清县", code="330521", day=DAY.isoformat()),
        title_en=messages.REPORT_TITLE_EN,
        station_name="德清县",
        station_code="330521",
        timezone="Asia/Shanghai",
        cutoff="15:00",
        window_start=START,
        window_end=END,
        generated_at=END,
        abnormal=abnormal,
        zero_report=not abnormal,
        summary_zh="发现疫病异常" if abnormal else messages.ZERO_REPORT,
        sites=sites,
    )


def zero_day(*, signed: bool = False) -> DailyReport:
    """One site, nothing seen: the report that must fit one page."""
    return _report([_site("xiazhu", "下渚湖湿地监测点", [], signed)])


def busy_day(evidence_dir: Path, shared_images: Path, *, anomalies: int = 120) -> DailyReport:
    """Two sites and `anomalies` anomalies, each epidemic one with photos copied from the shared
    images into `evidence_dir` (as central stores evidence)."""
    evidence_dir.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        shutil.copyfile(shared_images / name, evidence_dir / name)
    items: list[AnomalyItem] = []
    for i in range(anomalies):
        rule = RULES[i % len(RULES)]
        section = section_of(rule)
        sci, zh = SPECIES[i % len(SPECIES)]
        photos = (
            [Photo(name=n, uploaded=True, path=n) for n in PHOTOS[: 1 + i % 3]]
            + ([Photo(name=f"missing-{i}.jpg", uploaded=False)] if i % 4 == 0 else [])
            if section is Section.DISEASE and i < 12
            else []
        )
        at = START + timedelta(minutes=11 * i)
        items.append(
            AnomalyItem(
                event_id=f"{i:08d}-0000-4000-8000-000000000000",
                section=section,
                section_zh=messages.section_zh(section),
                report_day=DAY,
                time=at,
                received_at=at + timedelta(seconds=3),
                camera=f"cam{1 + i % 4}",
                node="node1",
                rule=rule,
                rule_zh=messages.rule_zh(rule),
                category="bird",
                category_zh="鸟类",
                species_scientific=sci,
                species_chinese=zh,
                count=1 + i % 7,
                severity="critical" if section is Section.DISEASE else "warning",
                severity_zh=messages.severity_zh(
                    "critical" if section is Section.DISEASE else "warning"
                ),
                review_status="confirmed",
                review_zh=messages.review_zh("confirmed"),
                message=f"{zh}静止超过30分钟，疑似死亡或患病（第{i + 1}起）",
                photos=photos,
            )
        )
    half = len(items) // 2
    return _report(
        [
            _site("xiazhu", "下渚湖湿地监测点", items[:half], signed=True),
            _site("changxing", "长兴扬子鳄保护区监测点", items[half:], signed=False),
        ]
    )
