"""异常情况 and 巡护记录: the case record form (opened on 确认并立案 or by hand) and the patrol log
with photos from a phone. Validation lives in central/cases.py; these routes only read forms."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from central import cases as casebook
from central.api.deps import ConfigDep, SessionDep
from central.db.models import Case, Patrol
from central.reports.daily import case_record
from central.web.deps import AccountDep, ReviewerDep, render

log = logging.getLogger(__name__)
router = APIRouter()
SHOWN_DAYS = 30


def _local(value: str, tz: ZoneInfo) -> datetime | None:
    """A datetime-local field (the station's time) as an aware datetime; None when empty."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=f"时间格式错误 bad time: {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _number(form: FormData, name: str) -> int | None:
    text = _text(form, name)
    return int(text) if text.isdigit() else None


def _yes_no(form: FormData, name: str) -> bool | None:
    return {"yes": True, "no": False}.get(_text(form, name))


def _case_data(form: FormData, tz: ZoneInfo) -> dict[str, Any]:
    """The form's fields as CaseInput data (validated there)."""
    kinds, ids, labs, results = (
        form.getlist(f"sample_{k}") for k in ("kind", "id", "lab", "result")
    )
    samples = [
        {"kind": k, "sample_id": i, "laboratory": lab, "result": r}
        for k, i, lab, r in zip(kinds, ids, labs, results, strict=False)
        if isinstance(i, str) and i.strip()
    ]
    return {
        "found_at": _local(_text(form, "found_at"), tz),
        "location": _text(form, "location"),
        "species_scientific": _text(form, "species_scientific") or None,
        "sick_count": _number(form, "sick_count") or 0,
        "dead_count": _number(form, "dead_count") or 0,
        "flock_count": _number(form, "flock_count"),
        "signs": [v for v in form.getlist("signs") if isinstance(v, str)],
        "signs_note": _text(form, "signs_note"),
        "origin": _text(form, "origin") or None,
        "human_contact": _yes_no(form, "human_contact"),
        "human_contact_note": _text(form, "human_contact_note"),
        "poultry_farms_3km": _number(form, "poultry_farms_3km"),
        "poultry_check": _text(form, "poultry_check"),
        "samples": samples,
        "no_sample_reason": _text(form, "no_sample_reason"),
        "measures": [v for v in form.getlist("measures") if isinstance(v, str)],
        "measures_note": _text(form, "measures_note"),
        "judgement": _text(form, "judgement"),
    }


def _errors(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]


def _case(session: SessionDep, account: AccountDep, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None or not account.scope.allows(case.site):
        raise HTTPException(status_code=404, detail="无此案例 no such case")
    return case


@router.get("/cases")
def cases_page(
    request: Request, session: SessionDep, config: ConfigDep, account: AccountDep
) -> Response:
    since = datetime.now(UTC) - timedelta(days=SHOWN_DAYS)
    rows = casebook.recent(
        session=session, model=Case, where=account.scope.where(Case.site), since=since
    )
    response: Response = render(
        request,
        "cases.html",
        config,
        account,
        page="cases",
        cases=[(c, [casebook.MISSING_ZH[g] for g in casebook.missing(c)]) for c in rows],
        sites=account.scope.visible(config.sites),
    )
    return response


@router.post("/cases")
async def open_case(
    request: Request, session: SessionDep, config: ConfigDep, account: ReviewerDep
) -> Response:
    form = await request.form()
    tz = ZoneInfo(config.timezone)
    data = {**_case_data(form, tz), "site": _text(form, "site")}
    try:
        case = casebook.open_by_hand(
            session=session,
            data=casebook.CaseCreate.model_validate(data),
            sites=set(account.scope.visible(config.sites)),
            catalogue=config.species_catalogue,
            by=account.name,
            now=datetime.now(UTC),
        )
    except ValidationError as exc:
        raise HTTPException(status_code=422, detail="；".join(_errors(exc))) from exc
    session.commit()
    log.info("case %d opened by hand at %s by %s", case.id, case.site, account.name)
    return RedirectResponse(f"/cases/{case.id}", status_code=303)


def _render_case(
    request: Request,
    session: SessionDep,
    config: ConfigDep,
    account: AccountDep,
    case: Case,
    errors: list[str],
    status_code: int = 200,
) -> Response:
    tz = ZoneInfo(config.timezone)
    record = case_record(case, casebook.event_of(session, case), tz, config)
    response: Response = render(
        request,
        "case.html",
        config,
        account,
        status_code=status_code,
        page="cases",
        case=case,
        record=record,
        errors=errors,
        signs=casebook.SIGNS_ZH,
        origins=casebook.ORIGINS_ZH,
        sample_kinds=casebook.SAMPLE_KINDS_ZH,
        measures=casebook.MEASURES_ZH,
        species=sorted(config.species_catalogue, key=lambda s: s.chinese_name),
    )
    return response


@router.get("/cases/{case_id}")
def case_page(
    request: Request, session: SessionDep, config: ConfigDep, account: AccountDep, case_id: int
) -> Response:
    return _render_case(request, session, config, account, _case(session, account, case_id), [])


@router.post("/cases/{case_id}")
async def save_case(
    request: Request, session: SessionDep, config: ConfigDep, account: ReviewerDep, case_id: int
) -> Response:
    case = _case(session, account, case_id)
    form = await request.form()
    try:
        data = casebook.CaseInput.model_validate(_case_data(form, ZoneInfo(config.timezone)))
        casebook.update(
            session=session,
            case=case,
            data=data,
            catalogue=config.species_catalogue,
            by=account.name,
            now=datetime.now(UTC),
        )
    except ValidationError as exc:
        session.rollback()
        return _render_case(request, session, config, account, case, _errors(exc), 422)
    except casebook.CaseError as exc:
        session.rollback()
        return _render_case(request, session, config, account, case, [str(exc)], 422)
    session.commit()
    return RedirectResponse(f"/cases/{case.id}#saved", status_code=303)


@router.post("/cases/{case_id}/photos")
async def add_case_photos(
    request: Request, session: SessionDep, config: ConfigDep, account: ReviewerDep, case_id: int
) -> Response:
    """Photos taken on site (a carcass found on patrol has no camera evidence)."""
    case = _case(session, account, case_id)
    form = await request.form()
    uploads = [u for u in form.getlist("photos") if isinstance(u, UploadFile) and u.filename]
    photos = [(u.filename or "", await u.read(casebook.MAX_PHOTO_BYTES + 1)) for u in uploads]
    try:
        casebook.add_photos(record=case, photos=photos, evidence_dir=config.evidence_dir)
    except casebook.CaseError as exc:
        session.rollback()
        return _render_case(request, session, config, account, case, [str(exc)], 422)
    session.commit()
    return RedirectResponse(f"/cases/{case.id}#photos", status_code=303)


def _stored_photo(config: ConfigDep, photos: list[dict[str, Any]], name: str) -> Response:
    stored = next((p for p in photos if p.get("name") == name), None)
    if stored is None:
        raise HTTPException(status_code=404, detail="无此照片 no such photo")
    return FileResponse(config.evidence_dir / str(stored["path"]), media_type="image/jpeg")


@router.get("/cases/{case_id}/photos/{name}")
def case_photo(
    session: SessionDep, config: ConfigDep, account: AccountDep, case_id: int, name: str
) -> Response:
    return _stored_photo(config, _case(session, account, case_id).photos, name)


# -- patrols ------------------------------------------------------------------------------------


@router.get("/patrols")
def patrols_page(
    request: Request, session: SessionDep, config: ConfigDep, account: AccountDep
) -> Response:
    since = datetime.now(UTC) - timedelta(days=SHOWN_DAYS)
    rows = casebook.recent(
        session=session, model=Patrol, where=account.scope.where(Patrol.site), since=since
    )
    response: Response = render(
        request,
        "patrols.html",
        config,
        account,
        page="patrols",
        patrols=rows,
        sites=account.scope.visible(config.sites),
        species=sorted(config.species_catalogue, key=lambda s: s.chinese_name),
    )
    return response


@router.post("/patrols")
async def record_patrol(
    request: Request, session: SessionDep, config: ConfigDep, account: ReviewerDep
) -> Response:
    form = await request.form()
    tz = ZoneInfo(config.timezone)
    names = [v for v in form.getlist("sighting_species") if isinstance(v, str)]
    counts = [v for v in form.getlist("sighting_count") if isinstance(v, str)]
    data = {
        "site": _text(form, "site"),
        "observers": _text(form, "observers"),
        "route": _text(form, "route"),
        "started_at": _local(_text(form, "started_at"), tz),
        "ended_at": _local(_text(form, "ended_at"), tz),
        "weather": _text(form, "weather"),
        "note": _text(form, "note"),
        "sightings": [
            {"species_scientific": n, "count": int(c)}
            for n, c in zip(names, counts, strict=False)
            if n and c.strip().isdigit() and int(c) > 0
        ],
    }
    uploads = [u for u in form.getlist("photos") if isinstance(u, UploadFile) and u.filename]
    photos = [(u.filename or "", await u.read(casebook.MAX_PHOTO_BYTES + 1)) for u in uploads]
    try:
        patrol = casebook.record_patrol(
            session=session,
            data=casebook.PatrolInput.model_validate(data),
            sites=set(account.scope.visible(config.sites)),
            catalogue=config.species_catalogue,
            by=account.name,
            now=datetime.now(UTC),
        )
        casebook.add_photos(record=patrol, photos=photos, evidence_dir=config.evidence_dir)
    except ValidationError as exc:
        raise HTTPException(status_code=422, detail="；".join(_errors(exc))) from exc
    session.commit()  # a CaseError (a bad photo) leaves before this: no patrol without photos
    log.info(
        "patrol %d at %s recorded by %s (%d photos)",
        patrol.id,
        patrol.site,
        account.name,
        len(photos),
    )
    return RedirectResponse(f"/patrols#patrol-{patrol.id}", status_code=303)


@router.get("/patrols/{patrol_id}/photos/{name}")
def patrol_photo(
    session: SessionDep, config: ConfigDep, account: AccountDep, patrol_id: int, name: str
) -> Response:
    patrol = session.get(Patrol, patrol_id)
    if patrol is None or not account.scope.allows(patrol.site):
        raise HTTPException(status_code=404, detail="无此巡护记录 no such patrol")
    return _stored_photo(config, patrol.photos, name)
