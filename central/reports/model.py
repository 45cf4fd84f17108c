"""The daily report as data: what every renderer (XLSX now, PDF later) and the JSON record share."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from broker.payloads import RuleName


class Section(StrEnum):
    """Which part of the report an anomaly belongs to."""

    DISEASE = "disease"  # 疫病异常: the only section that makes a day abnormal
    OTHER = "other"  # 其他情况: people, vehicles and dogs in the reserve
    EQUIPMENT = "equipment"  # 设备故障: cameras and nodes


# Every anomaly rule of the contract (raised by edge/rules and central/nodes, surveillance).
RULE_SECTIONS: dict[RuleName, Section] = {
    RuleName.MOTIONLESS_BIRD: Section.DISEASE,
    RuleName.MORTALITY_CLUSTER: Section.DISEASE,
    RuleName.ABNORMAL_COUNT: Section.DISEASE,
    RuleName.HIGH_RISK_SPECIES: Section.DISEASE,
    RuleName.NIGHT_INTRUSION: Section.OTHER,
    RuleName.FREE_ROAMING_DOG: Section.OTHER,
    RuleName.CAMERA_HEALTH: Section.EQUIPMENT,
    RuleName.STORAGE_LOW: Section.EQUIPMENT,
}


def section_of(rule: str | None) -> Section:
    """The section of an anomaly's rule; a rule this table does not know counts as a wildlife
    epidemic abnormality, because a false 零报告 costs more than a false alarm."""
    try:
        return RULE_SECTIONS[RuleName(rule or "")]
    except (KeyError, ValueError):
        return Section.DISEASE


class CategoryCount(BaseModel):
    """Sum of `count` over observation events of one category."""

    category: str
    category_zh: str
    count: int


class SpeciesCount(BaseModel):
    """Observation events naming one species: how many, and how they were observed."""

    scientific_name: str
    chinese_name: str
    count: int = Field(description="sum of the count over all images (one bird may be in many)")
    max_count: int = Field(description="most individuals in one image (MaxN)")
    method: str = Field("camera", description="how observed: camera | patrol (巡护)")
    method_zh: str
    cameras: list[str]


class Photo(BaseModel):
    """One evidence image an event lists."""

    name: str
    uploaded: bool = Field(description="the node has uploaded it to central")
    path: str | None = Field(None, description="relative to the evidence directory")


class AnomalyItem(BaseModel):
    """One abnormal finding."""

    event_id: str
    section: Section
    section_zh: str
    report_day: date = Field(description="the report whose window holds the capture time")
    late: bool = Field(False, description="captured in an earlier window, stored after its report")
    time: datetime = Field(description="capture time in the report's timezone")
    received_at: datetime = Field(description="when central received it, report's timezone")
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
    reviewer: str | None = None
    reviewed_at: datetime | None = None
    review_note: str | None = None
    message: str
    photos: list[Photo] = Field(default_factory=list)


class RosterGap(BaseModel):
    """A span with no reachable duty officer on the site's roster (report's timezone)."""

    start: datetime
    end: datetime


class SampleRecord(BaseModel):
    """One sample of a case sent to a laboratory."""

    kind: str = Field(description="oropharyngeal_swab | cloacal_swab | tissue | carcass | ...")
    kind_zh: str
    sample_id: str = Field(description="样品编号 the sample's label")
    laboratory: str = Field(description="送检单位 the laboratory")
    result: str = Field(description="检测结果; empty while pending (待检)")


class CaseRecord(BaseModel):
    """异常情况 one case as recorded by staff (central/cases.py), report's timezone."""

    case_id: int
    late: bool = Field(False, description="found in an earlier window, recorded after its report")
    event_id: str | None = Field(description="the camera event it was opened from; null: by hand")
    found_at: datetime = Field(description="发现时间")
    location: str = Field(description="发现地点")
    species_scientific: str | None
    species_chinese: str | None = Field(description="物种 (catalogue name)")
    protection_level: str | None = Field(None, description="国家重点保护级别 I / II")
    sick_count: int = Field(description="患病数量")
    dead_count: int = Field(description="死亡数量")
    flock_count: int | None = Field(description="同群其他个体数量; null: not recorded")
    signs: list[str] = Field(description="临床症状 codes of the checklist")
    signs_zh: list[str]
    signs_note: str
    origin: str = Field(description="wild | captive | released | unknown; empty: not recorded")
    origin_zh: str
    human_contact: bool | None = Field(description="人员接触; null: not recorded")
    human_contact_note: str
    poultry_farms_3km: int | None = Field(description="周边3公里家禽养殖场数量")
    poultry_check: str = Field(description="对养殖场的排查情况")
    samples: list[SampleRecord] = Field(description="采样送检")
    no_sample_reason: str = Field(description="未采样原因")
    measures: list[str] = Field(description="处置措施 codes (harmless_disposal = 无害化处理)")
    measures_zh: list[str]
    measures_note: str
    judgement: str = Field(description="初步判断")
    photos: list[Photo] = Field(default_factory=list, description="the event's evidence")
    opened_by: str
    updated_by: str | None = None
    missing: list[str] = Field(description="keys of required information not recorded")
    missing_zh: list[str]


class Sighting(BaseModel):
    species_scientific: str
    species_chinese: str
    count: int


class PatrolRecord(BaseModel):
    """巡护记录 one patrol, report's timezone."""

    patrol_id: int
    late: bool = Field(False, description="started in an earlier window, recorded after its report")
    observers: str = Field(description="巡护人员")
    route: str = Field(description="巡护路线或区域")
    started_at: datetime
    ended_at: datetime
    weather: str = Field(description="天气")
    sightings: list[Sighting] = Field(description="所见物种与数量")
    note: str
    photos: list[str] = Field(description="photo file names (evidence directory, patrols/<id>/)")
    recorded_by: str


class SignOff(BaseModel):
    """审核签发: who filled in and who audited a site's report (report's timezone)."""

    reporter: str = Field(description="填报人 the person who filled in the report")
    reporter_phone: str = Field(description="填报人联系电话 the reporter's phone")
    auditor: str = Field(description="审核人 the station head who signed")
    signed_at: datetime = Field(description="签发时间 when the head signed")
    report_as_of: datetime = Field(description="the as-of time of the draft the head read")
    note: str = ""


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
    anomalies: list[AnomalyItem] = Field(description="captured in the window, every section")
    late_additions: list[AnomalyItem] = Field(
        default_factory=list, description="captured in an earlier window, stored after its report"
    )
    abnormal: bool = Field(description="a wildlife epidemic abnormality (late additions included)")
    abnormal_zh: str = Field(description="是 / 否")
    summary_zh: str = Field(description="无异常 or 发现疫病异常 n 起, then the other sections")
    roster_gaps: list[RosterGap] = Field(
        default_factory=list,
        description="spans in the window and the 24 hours after it when no reachable duty "
        "officer was or is on the roster (only with duty alerting, alerts.escalation)",
    )
    signoff: SignOff | None = Field(
        None, description="审核签发 by the station head; null: 未经审核 (not reviewed)"
    )
    cases: list[CaseRecord] = Field(
        default_factory=list, description="异常情况 found in the window (and of late additions)"
    )
    patrols: list[PatrolRecord] = Field(
        default_factory=list, description="巡护记录 patrols started in the window"
    )
    missing_zh: list[str] = Field(
        default_factory=list,
        description="required information not yet recorded, one line per case (shown before "
        "sign-off)",
    )

    def in_section(self, section: Section) -> list[AnomalyItem]:
        """The anomalies of one section captured in the window (late additions have their own)."""
        return [a for a in self.anomalies if a.section is section]


REPORT_SCHEMA_VERSION = 1  # raised when a key changes meaning or goes; new keys keep it
REPORT_SCHEMA_PATH = "/api/reports/schema.json"


class DailyReport(BaseModel):
    """The 15:00 report: one section per configured site (plus any unconfigured site with data)."""

    schema_version: int = Field(
        REPORT_SCHEMA_VERSION,
        description="version of this JSON format; its JSON Schema is served by central at "
        + REPORT_SCHEMA_PATH,
    )
    day: date
    title: str = ""
    title_en: str = ""
    station_name: str
    station_code: str
    timezone: str
    cutoff: str
    window_start: datetime
    window_end: datetime
    generated_at: datetime = Field(description="when the data was read (the report's as-of time)")
    provisional: bool = Field(False, description="generated before the window closed")
    late_since: datetime | None = Field(
        None, description="late additions are anomalies stored from this time on"
    )
    late_since_zh: str = ""
    abnormal: bool
    zero_report: bool = Field(description="true when no site had a wildlife epidemic abnormality")
    summary_zh: str
    sites: list[SiteSection]


def report_json_schema() -> dict[str, object]:
    """The JSON Schema of the report file (what a bureau's system validates against)."""
    schema = DailyReport.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"{REPORT_SCHEMA_PATH}#v{REPORT_SCHEMA_VERSION}"
    schema["title"] = "WildWatch 监测日报 daily report"
    return schema
