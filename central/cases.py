"""异常情况 case records and 巡护记录 patrol logs: what staff record for the daily report.

A case is opened from a confirmed event (确认并立案) or by hand, then filled in: species from
the catalogue, sick and dead counts apart, the rest of the flock, clinical signs, origin (wild,
captive, released: the crested ibis at Xiazhu Lake has a captive population beside the wild
one), human contact, poultry farms within 3 km, samples with their laboratory and result,
measures taken and the preliminary judgement. `missing()` lists what the bureau expects and the
record lacks; the report page shows it before the head signs.

A patrol is one walk of the reserve: observers, route, times, weather, what was seen (species
and counts) and photos taken on a phone. Both are validated here once, for the console's forms
and the API alike.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session

from broker.topics import ID_PATTERN
from central.db.models import Case, Event, Patrol
from models.species import Catalogue


class Sign(StrEnum):
    """临床症状 clinical signs of the checklist."""

    DEAD = "dead"
    ATAXIA = "ataxia"
    NECK_TWIST = "neck_twist"
    PARALYSIS = "paralysis"
    RESPIRATORY = "respiratory"
    DISCHARGE = "discharge"
    DIARRHOEA = "diarrhoea"
    EMACIATION = "emaciation"
    EYES = "eyes"
    FEATHERS = "feathers"
    BLEEDING = "bleeding"


SIGNS_ZH: dict[str, str] = {
    Sign.DEAD: "死亡",
    Sign.ATAXIA: "站立不稳、共济失调",
    Sign.NECK_TWIST: "头颈扭曲",
    Sign.PARALYSIS: "瘫痪、翅膀下垂",
    Sign.RESPIRATORY: "呼吸困难",
    Sign.DISCHARGE: "口鼻分泌物",
    Sign.DIARRHOEA: "腹泻、绿色稀便",
    Sign.EMACIATION: "消瘦",
    Sign.EYES: "眼睛浑浊或肿胀",
    Sign.FEATHERS: "羽毛蓬乱、脱落",
    Sign.BLEEDING: "出血",
}


class Origin(StrEnum):
    WILD = "wild"
    CAPTIVE = "captive"
    RELEASED = "released"
    UNKNOWN = "unknown"


ORIGINS_ZH: dict[str, str] = {
    Origin.WILD: "野生",
    Origin.CAPTIVE: "人工饲养",
    Origin.RELEASED: "人工繁育放归",
    Origin.UNKNOWN: "不明",
}


class SampleKind(StrEnum):
    OROPHARYNGEAL = "oropharyngeal_swab"
    CLOACAL = "cloacal_swab"
    TISSUE = "tissue"
    CARCASS = "carcass"
    BLOOD = "blood"
    FAECES = "faeces"
    ENVIRONMENT = "environment"


SAMPLE_KINDS_ZH: dict[str, str] = {
    SampleKind.OROPHARYNGEAL: "咽喉拭子",
    SampleKind.CLOACAL: "泄殖腔拭子",
    SampleKind.TISSUE: "组织",
    SampleKind.CARCASS: "整尸",
    SampleKind.BLOOD: "血液",
    SampleKind.FAECES: "粪便",
    SampleKind.ENVIRONMENT: "环境样品",
}


class Measure(StrEnum):
    ISOLATION = "isolation"
    DISINFECTION = "disinfection"
    DISPOSAL = "harmless_disposal"
    CLOSURE = "area_closed"
    MONITORING = "monitoring"
    REPORTED = "reported"


MEASURES_ZH: dict[str, str] = {
    Measure.ISOLATION: "隔离",
    Measure.DISINFECTION: "消毒",
    Measure.DISPOSAL: "无害化处理",
    Measure.CLOSURE: "封控、限制进入",
    Measure.MONITORING: "加强监测",
    Measure.REPORTED: "已报告当地兽医部门",
}

Text = Annotated[str, Field(max_length=2000)]
Short = Annotated[str, Field(max_length=200)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]


class SampleInput(BaseModel):
    """One sample sent to a laboratory; `result` empty until it comes back."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: SampleKind
    sample_id: Annotated[str, Field(min_length=1, max_length=64)]
    laboratory: Short = ""
    result: Short = ""


class CaseInput(BaseModel):
    """What a person records about a case (the console form and `PUT /api/cases/{id}`)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    found_at: AwareDatetime | None = Field(None, description="when found (default: unchanged)")
    location: Short = ""
    species_scientific: str | None = Field(None, description="scientific name of the catalogue")
    sick_count: Count = 0
    dead_count: Count = 0
    flock_count: Count | None = Field(None, description="others of the same flock, healthy")
    signs: list[Sign] = Field(default_factory=list, max_length=len(Sign))
    signs_note: Text = ""
    origin: Origin | None = None
    human_contact: bool | None = Field(None, description="did a person touch the animals")
    human_contact_note: Text = ""
    poultry_farms_3km: Count | None = Field(None, description="poultry farms within 3 km")
    poultry_check: Text = ""
    samples: list[SampleInput] = Field(default_factory=list, max_length=50)
    no_sample_reason: Text = ""
    measures: list[Measure] = Field(default_factory=list, max_length=len(Measure))
    measures_note: Text = ""
    judgement: Text = ""


class CaseCreate(CaseInput):
    """A case opened by hand (`POST /api/cases`): its site and when it was found."""

    site: Annotated[str, Field(pattern=ID_PATTERN)]
    found_at: AwareDatetime


class CaseError(ValueError):
    """The record cannot be saved as given (unknown species or site); the message says why."""


MISSING_ZH: dict[str, str] = {
    "species": "物种",
    "counts": "病死数量",
    "location": "发现地点",
    "signs": "临床症状",
    "origin": "来源（野生/人工饲养/放归）",
    "human_contact": "人员接触情况",
    "poultry": "周边3公里家禽养殖场情况",
    "samples": "采样情况（或未采样原因）",
    "measures": "处置措施",
    "judgement": "初步判断",
}


def missing(case: Case) -> list[str]:
    """Keys of MISSING_ZH the bureau expects and the record lacks, in form order."""
    gaps = {
        "species": not case.species_scientific,
        "counts": case.sick_count + case.dead_count == 0,
        "location": not case.location,
        "signs": not case.signs and not case.signs_note,
        "origin": not case.origin,
        "human_contact": case.human_contact is None,
        "poultry": case.poultry_farms_3km is None,
        "samples": not case.samples and not case.no_sample_reason,
        "measures": not case.measures and not case.measures_note,
        "judgement": not case.judgement,
    }
    return [key for key, lacking in gaps.items() if lacking]


def _apply(case: Case, data: CaseInput, *, catalogue: Catalogue, by: str, now: datetime) -> None:
    species = None
    if data.species_scientific:
        species = catalogue.get(data.species_scientific)
        if species is None:
            raise CaseError(
                f"物种不在名录中 species not in the catalogue: {data.species_scientific}"
            )
    if data.found_at is not None:
        case.found_at = data.found_at
    case.location = data.location
    case.species_scientific = species.scientific_name if species else None
    case.species_chinese = species.chinese_name if species else None
    case.sick_count, case.dead_count, case.flock_count = (
        data.sick_count,
        data.dead_count,
        data.flock_count,
    )
    case.signs = [s.value for s in data.signs]
    case.signs_note = data.signs_note
    case.origin = data.origin.value if data.origin else ""
    case.human_contact, case.human_contact_note = data.human_contact, data.human_contact_note
    case.poultry_farms_3km, case.poultry_check = data.poultry_farms_3km, data.poultry_check
    case.samples = [s.model_dump(mode="json") for s in data.samples]
    case.no_sample_reason = data.no_sample_reason
    case.measures = [m.value for m in data.measures]
    case.measures_note = data.measures_note
    case.judgement = data.judgement
    case.updated_by, case.updated_at = by, now


def update(
    *, session: Session, case: Case, data: CaseInput, catalogue: Catalogue, by: str, now: datetime
) -> Case:
    """Replace the case's record with `data` (what the form or the API sent)."""
    _apply(case, data, catalogue=catalogue, by=by, now=now)
    session.flush()
    return case


def open_by_hand(
    *,
    session: Session,
    data: CaseCreate,
    sites: set[str] | frozenset[str],
    catalogue: Catalogue,
    by: str,
    now: datetime,
) -> Case:
    """A case nobody's camera saw (a patrol found it, a farmer called)."""
    if data.site not in sites:
        raise CaseError(f"无此站点 no such site: {data.site}")
    case = Case(
        site=data.site,
        event_id=None,
        opened_by=by,
        opened_at=now,
        found_at=data.found_at,
        status="open",
    )
    _apply(case, data, catalogue=catalogue, by=by, now=now)
    session.add(case)
    session.flush()
    return case


def form_of(case: Case) -> CaseInput:
    """The record as the input it came from (to prefill the form)."""
    return CaseInput.model_validate(
        {
            "found_at": case.found_at,
            "location": case.location,
            "species_scientific": case.species_scientific,
            "sick_count": case.sick_count,
            "dead_count": case.dead_count,
            "flock_count": case.flock_count,
            "signs": case.signs,
            "signs_note": case.signs_note,
            "origin": case.origin or None,
            "human_contact": case.human_contact,
            "human_contact_note": case.human_contact_note,
            "poultry_farms_3km": case.poultry_farms_3km,
            "poultry_check": case.poultry_check,
            "samples": case.samples,
            "no_sample_reason": case.no_sample_reason,
            "measures": case.measures,
            "measures_note": case.measures_note,
            "judgement": case.judgement,
        }
    )


def cases_in_window(
    *,
    session: Session,
    start: datetime,
    end: datetime,
    also_events: list[str],
    opened_since: datetime | None = None,
) -> list[Case]:
    """Cases found in [start, end), those of the listed events (late additions), and those
    found earlier but opened from `opened_since` on (recorded after their own report)."""
    where = sa.and_(Case.found_at >= start, Case.found_at < end)
    if also_events:
        where = sa.or_(where, Case.event_id.in_(also_events))
    if opened_since is not None:
        where = sa.or_(where, sa.and_(Case.found_at < start, Case.opened_at >= opened_since))
    return list(session.scalars(sa.select(Case).where(where).order_by(Case.found_at, Case.id)))


def event_of(session: Session, case: Case) -> Event | None:
    if case.event_id is None:
        return None
    return session.scalar(sa.select(Event).where(Event.event_id == case.event_id))


# -- patrols ------------------------------------------------------------------------------------


class Sighting(BaseModel):
    """What a patrol saw of one species."""

    model_config = ConfigDict(extra="forbid")

    species_scientific: str
    count: Annotated[int, Field(ge=1, le=1_000_000)]


class PatrolInput(BaseModel):
    """One patrol (the console's form on a phone, `POST /api/patrols`)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    site: Annotated[str, Field(pattern=ID_PATTERN)]
    observers: Annotated[str, Field(min_length=1, max_length=200)]
    route: Annotated[str, Field(min_length=1, max_length=200)]
    started_at: AwareDatetime
    ended_at: AwareDatetime
    weather: Annotated[str, Field(max_length=32)] = ""
    sightings: list[Sighting] = Field(default_factory=list, max_length=200)
    note: Text = ""

    @model_validator(mode="after")
    def _order(self) -> PatrolInput:
        if self.ended_at < self.started_at:
            raise ValueError("结束时间早于开始时间 the patrol ends before it starts")
        if (self.ended_at - self.started_at).total_seconds() > 24 * 3600:
            raise ValueError("巡护超过24小时 a patrol lasts at most 24 hours")
        return self


def record_patrol(
    *,
    session: Session,
    data: PatrolInput,
    sites: set[str] | frozenset[str],
    catalogue: Catalogue,
    by: str,
    now: datetime,
) -> Patrol:
    if data.site not in sites:
        raise CaseError(f"无此站点 no such site: {data.site}")
    sightings = []
    for s in data.sightings:
        species = catalogue.get(s.species_scientific)
        if species is None:
            raise CaseError(f"物种不在名录中 species not in the catalogue: {s.species_scientific}")
        sightings.append(
            {
                "species_scientific": species.scientific_name,
                "species_chinese": species.chinese_name,
                "count": s.count,
            }
        )
    patrol = Patrol(
        site=data.site,
        observers=data.observers,
        route=data.route,
        started_at=data.started_at,
        ended_at=data.ended_at,
        weather=data.weather,
        sightings=sightings,
        note=data.note,
        photos=[],
        created_by=by,
        created_at=now,
    )
    session.add(patrol)
    session.flush()
    return patrol


def patrols_in_window(
    *, session: Session, start: datetime, end: datetime, recorded_since: datetime | None = None
) -> list[Patrol]:
    """Patrols that started in [start, end), and those that started earlier but were recorded
    from `recorded_since` on (a patrol logged after its own report)."""
    where = sa.and_(Patrol.started_at >= start, Patrol.started_at < end)
    if recorded_since is not None:
        where = sa.or_(
            where, sa.and_(Patrol.started_at < start, Patrol.created_at >= recorded_since)
        )
    return list(
        session.scalars(sa.select(Patrol).where(where).order_by(Patrol.started_at, Patrol.id))
    )


def recent(
    *,
    session: Session,
    model: type[Case] | type[Patrol],
    where: list[sa.ColumnElement[bool]],
    since: datetime,
) -> list[Any]:
    """Cases found, or patrols started, since `since` (newest first) under `where` (the scope)."""
    column = model.found_at if model is Case else model.started_at  # type: ignore[union-attr]
    return list(
        session.scalars(sa.select(model).where(column >= since, *where).order_by(column.desc()))
    )


MAX_PHOTOS = 6
MAX_PHOTO_BYTES = 15 * 1024 * 1024
PATROL_PHOTOS = "patrols"  # under the evidence directory
CASE_PHOTOS = "cases"


def checked_photo(name: str, data: bytes) -> bytes:
    """A phone photo as JPEG bytes (decoded once, so a truncated or forged file is refused);
    CaseError says which file and why."""
    import io

    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_PHOTO_BYTES:
        raise CaseError(f"照片过大 photo too large (> 15 MB): {name}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            out = io.BytesIO()
            image.convert("RGB").save(out, format="JPEG", quality=85)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CaseError(f"不是有效的图片 not a readable image: {name}") from exc


def add_photos(
    *, record: Case | Patrol, photos: list[tuple[str, bytes]], evidence_dir: Path
) -> list[dict[str, Any]]:
    """Check every photo first (one bad photo keeps none), then store each atomically under
    evidence_dir/patrols/<id>/ (or cases/<id>/) and list it on the record (at most MAX_PHOTOS
    in all)."""
    import hashlib
    import os
    import uuid

    if len(record.photos) + len(photos) > MAX_PHOTOS:
        raise CaseError(f"每条记录最多 {MAX_PHOTOS} 张照片 at most {MAX_PHOTOS} photos a record")
    jpegs = [checked_photo(name, data) for name, data in photos]
    kind = PATROL_PHOTOS if isinstance(record, Patrol) else CASE_PHOTOS
    folder = evidence_dir / kind / str(record.id)
    folder.mkdir(parents=True, exist_ok=True)
    added = []
    for data in jpegs:
        name = f"{uuid.uuid4().hex[:12]}.jpg"
        tmp = folder / f".{name}.part"
        tmp.write_bytes(data)
        os.replace(tmp, folder / name)
        added.append(
            {
                "name": name,
                "path": f"{kind}/{record.id}/{name}",
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
            }
        )
    record.photos = [*record.photos, *added]
    return added
