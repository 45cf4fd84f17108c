"""站点与设备 status: every site, node and camera the account may see; offline ones first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response

from central import roster
from central.api.deps import ConfigDep, SessionDep
from central.web import queries
from central.web.deps import AccountDep, render

router = APIRouter()
TIMELINE_DAYS = 7
ROSTER_AHEAD = timedelta(days=7)


@router.get("/status")
def status_page(
    request: Request, session: SessionDep, config: ConfigDep, account: AccountDep
) -> Response:
    now = datetime.now(UTC)
    nodes = queries.node_status(
        session=session,
        scope=account.scope,
        now=now,
        offline_after_s=config.monitor.offline_after_s,
        tz=ZoneInfo(config.timezone),
        days=TIMELINE_DAYS,
    )
    tz = ZoneInfo(config.timezone)
    sites = account.scope.visible(sorted(config.sites))
    gaps = {
        site: roster.gaps(session=session, site=site, start=now, end=now + ROSTER_AHEAD, tz=tz)
        for site in sites
    }
    pager = request.app.state.pager
    devices_down = [d.key for d in pager.devices if not d.alive] if pager is not None else []
    response: Response = render(
        request,
        "status.html",
        config,
        account,
        page="status",
        nodes=nodes,
        now=now,
        days=TIMELINE_DAYS,
        sites=sites,
        roster_gaps=gaps,
        devices_down=devices_down,
    )
    return response
