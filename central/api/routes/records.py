"""异常情况 case records and 巡护记录 patrol logs over the API (staff token required): what the
console's forms do, for a station's own tools. Validation is central/cases.py's; answers are
the report's own records (central/reports/model.py), keys documented in its JSON Schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, UploadFile

from broker.topics import ID_PATTERN
from central import cases as casebook
from central.api.deps import ConfigDep, CurrentStaff, SessionDep, StaffScope, get_current_staff
from central.db.models import Case, Patrol
from central.reports.daily import case_record, patrol_record
from central.reports.model import CaseRecord, PatrolRecord

router = APIRouter(prefix="/api", tags=["records"], dependencies=[Depends(get_current_staff)])
SiteQuery = Annotated[str | None, Query(pattern=ID_PATTERN)]
DaysQuery = Annotated[int, Query(ge=1, le=366, description="found or started in the last N days")]


def _case(session: SessionDep, scope: StaffScope, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None or not scope.allows(case.site):
        raise HTTPException(status_code=404, detail="无此案例 no such case")
    return case


def _record(session: SessionDep, config: ConfigDep, case: Case) -> CaseRecord:
    return case_record(case, casebook.event_of(session, case), ZoneInfo(config.timezone), config)


@router.get("/cases", response_model=list[CaseRecord])
def read_cases(
    session: SessionDep,
    config: ConfigDep,
    scope: StaffScope,
    site: SiteQuery = None,
    days: DaysQuery = 30,
) -> list[CaseRecord]:
    """Cases found in the last `days`, newest first, with what each still lacks (`missing`)."""
    where = [*scope.where(Case.site), *([Case.site == site] if site else [])]
    since = datetime.now(UTC) - timedelta(days=days)
    rows = casebook.recent(session=session, model=Case, where=where, since=since)
    return [_record(session, config, c) for c in rows]


@router.get("/cases/{case_id}", response_model=CaseRecord)
def read_case(
    session: SessionDep, config: ConfigDep, scope: StaffScope, case_id: int
) -> CaseRecord:
    return _record(session, config, _case(session, scope, case_id))


@router.post("/cases", response_model=CaseRecord, status_code=201)
def create_case(
    session: SessionDep,
    config: ConfigDep,
    scope: StaffScope,
    staff: CurrentStaff,
    body: casebook.CaseCreate,
) -> CaseRecord:
    """Open a case by hand (no camera event)."""
    case = casebook.open_by_hand(
        session=session,
        data=body,
        sites=set(scope.visible(config.sites)),
        catalogue=config.species_catalogue,
        by=staff.name,
        now=datetime.now(UTC),
    )
    session.commit()
    return _record(session, config, case)


@router.put("/cases/{case_id}", response_model=CaseRecord)
def update_case(
    session: SessionDep,
    config: ConfigDep,
    scope: StaffScope,
    staff: CurrentStaff,
    case_id: int,
    body: casebook.CaseInput,
) -> CaseRecord:
    """Replace the case's record (every field; what is left out is cleared)."""
    case = _case(session, scope, case_id)
    casebook.update(
        session=session,
        case=case,
        data=body,
        catalogue=config.species_catalogue,
        by=staff.name,
        now=datetime.now(UTC),
    )
    session.commit()
    return _record(session, config, case)


@router.get("/patrols", response_model=list[PatrolRecord])
def read_patrols(
    session: SessionDep,
    config: ConfigDep,
    scope: StaffScope,
    site: SiteQuery = None,
    days: DaysQuery = 30,
) -> list[PatrolRecord]:
    where = [*scope.where(Patrol.site), *([Patrol.site == site] if site else [])]
    since = datetime.now(UTC) - timedelta(days=days)
    rows = casebook.recent(session=session, model=Patrol, where=where, since=since)
    tz = ZoneInfo(config.timezone)
    return [patrol_record(p, tz) for p in rows]


@router.post("/patrols", response_model=PatrolRecord, status_code=201)
def create_patrol(
    session: SessionDep,
    config: ConfigDep,
    scope: StaffScope,
    staff: CurrentStaff,
    body: casebook.PatrolInput,
) -> PatrolRecord:
    """Record a patrol (photos: `POST /api/patrols/{id}/photos`)."""
    patrol = casebook.record_patrol(
        session=session,
        data=body,
        sites=set(scope.visible(config.sites)),
        catalogue=config.species_catalogue,
        by=staff.name,
        now=datetime.now(UTC),
    )
    session.commit()
    return patrol_record(patrol, ZoneInfo(config.timezone))


async def _keep_photos(
    session: SessionDep, config: ConfigDep, record: Case | Patrol, photos: list[UploadFile]
) -> None:
    # read one byte past the cap: a larger file is refused without reading it all
    files = [(p.filename or "", await p.read(casebook.MAX_PHOTO_BYTES + 1)) for p in photos]
    casebook.add_photos(record=record, photos=files, evidence_dir=config.evidence_dir)
    session.commit()


@router.post("/patrols/{patrol_id}/photos", response_model=PatrolRecord)
async def add_patrol_photos(
    session: SessionDep,
    config: ConfigDep,
    scope: StaffScope,
    patrol_id: int,
    photos: list[UploadFile],
) -> PatrolRecord:
    """Photos of a patrol (multipart, field `photos`, up to 6 a patrol); all or none are kept."""
    patrol = session.get(Patrol, patrol_id)
    if patrol is None or not scope.allows(patrol.site):
        raise HTTPException(status_code=404, detail="无此巡护记录 no such patrol")
    await _keep_photos(session, config, patrol, photos)
    return patrol_record(patrol, ZoneInfo(config.timezone))


@router.post("/cases/{case_id}/photos", response_model=CaseRecord)
async def add_case_photos(
    session: SessionDep,
    config: ConfigDep,
    scope: StaffScope,
    case_id: int,
    photos: list[UploadFile],
) -> CaseRecord:
    """Photos taken on site for a case (multipart, field `photos`, up to 6); all or none."""
    case = _case(session, scope, case_id)
    await _keep_photos(session, config, case, photos)
    return _record(session, config, case)
