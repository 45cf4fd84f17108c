"""值班表 duty roster: who is on duty now, the shifts and overrides of each site, and the gaps of
the coming week; the station head (or an admin) edits it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from central import accounts, roster
from central.api.deps import ConfigDep, SessionDep
from central.db.models import DutyOverride, DutyShift
from central.web.deps import AccountDep, CsrfAccountDep, Forbidden, render

log = logging.getLogger(__name__)
router = APIRouter()
AHEAD = timedelta(days=7)


def _keeper(account: CsrfAccountDep) -> accounts.Account:
    """The roster is kept by the station head (their sites) or an admin."""
    if not account.role.may_sign:
        raise Forbidden()
    return account


KeeperDep = Annotated[accounts.Account, Depends(_keeper)]


def _site_of(account: accounts.Account, config: ConfigDep, site: str) -> str:
    if site not in config.sites or not account.scope.allows(site):
        raise HTTPException(status_code=404, detail="无此站点 no such site")
    return site


@router.get("/roster")
def roster_page(
    request: Request, session: SessionDep, config: ConfigDep, account: AccountDep
) -> Response:
    tz = ZoneInfo(config.timezone)
    now = datetime.now(UTC)
    sites = []
    for site in account.scope.visible(sorted(config.sites)):
        sites.append(
            {
                "site": site,
                "now": roster.chain(session=session, site=site, at=now, tz=tz),
                "shifts": session.scalars(
                    sa.select(DutyShift)
                    .where(DutyShift.site == site)
                    .order_by(DutyShift.role, DutyShift.day_kind, DutyShift.start_time)
                ).all(),
                "overrides": session.scalars(
                    sa.select(DutyOverride)
                    .where(DutyOverride.site == site, DutyOverride.ends_at > now)
                    .order_by(DutyOverride.starts_at)
                ).all(),
                "gaps": roster.gaps(session=session, site=site, start=now, end=now + AHEAD, tz=tz),
            }
        )
    response: Response = render(
        request,
        "roster.html",
        config,
        account,
        page="roster",
        sites=sites,
        roles=list(roster.DutyRole),
        day_kinds=[k for k in roster.DayKind],
    )
    return response


def _refused(error: roster.RosterError) -> HTTPException:
    return HTTPException(status_code=422, detail=str(error))


SAVED = "/roster"


@router.post("/roster/{site}/shifts")
def add_shift(
    session: SessionDep,
    config: ConfigDep,
    account: KeeperDep,
    site: str,
    role: Annotated[roster.DutyRole, Form()],
    user_name: Annotated[str, Form(max_length=64)],
    day_kind: Annotated[roster.DayKind, Form()],
    start: Annotated[time, Form()],
    end: Annotated[time, Form()],
) -> Response:
    try:
        roster.add_shift(
            session=session,
            site=_site_of(account, config, site),
            role=role,
            user_name=user_name,
            day_kind=day_kind,
            start=start,
            end=end,
        )
    except roster.RosterError as exc:
        raise _refused(exc) from exc
    session.commit()
    log.info(
        "roster %s: shift %s %s %s %s-%s added by %s",
        site,
        role,
        user_name,
        day_kind,
        start,
        end,
        account.name,
    )
    return RedirectResponse(SAVED, status_code=303)


@router.post("/roster/{site}/overrides")
def add_override(
    session: SessionDep,
    config: ConfigDep,
    account: KeeperDep,
    site: str,
    role: Annotated[roster.DutyRole, Form()],
    user_name: Annotated[str, Form(max_length=64)],
    starts_at: Annotated[datetime, Form()],
    ends_at: Annotated[datetime, Form()],
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    tz = ZoneInfo(config.timezone)  # a datetime-local field carries no offset: station time
    start = starts_at if starts_at.tzinfo else starts_at.replace(tzinfo=tz)
    end = ends_at if ends_at.tzinfo else ends_at.replace(tzinfo=tz)
    try:
        roster.add_override(
            session=session,
            site=_site_of(account, config, site),
            role=role,
            user_name=user_name,
            starts_at=start,
            ends_at=end,
            note=note.strip(),
        )
    except roster.RosterError as exc:
        raise _refused(exc) from exc
    session.commit()
    log.info(
        "roster %s: %s covers %s %s-%s (by %s)", site, user_name, role, start, end, account.name
    )
    return RedirectResponse(SAVED, status_code=303)


@router.post("/roster/{site}/{kind}/{item_id}/delete")
def delete_item(
    session: SessionDep,
    config: ConfigDep,
    account: KeeperDep,
    site: str,
    kind: str,
    item_id: int,
) -> Response:
    _site_of(account, config, site)
    row: DutyShift | DutyOverride | None
    if kind == "shifts":
        row = session.get(DutyShift, item_id)
    elif kind == "overrides":
        row = session.get(DutyOverride, item_id)
    else:
        row = None
    if row is None or row.site != site:
        raise HTTPException(status_code=404)
    session.delete(row)
    session.commit()
    log.info("roster %s: %s %d deleted by %s", site, kind, item_id, account.name)
    return RedirectResponse(SAVED, status_code=303)
