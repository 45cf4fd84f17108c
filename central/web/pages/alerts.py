"""告警 alerts: the incidents being escalated in the person's sites, each message's fate
(submitted, delivered, failed with the provider's code, held back by a cap), the button that
takes an alert (接警) as a reply with its code would, the one that closes it (结束), and the
maintenance windows (维护静默) in which new incidents page nobody."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from central import alerting
from central.alerts.pager import Pager
from central.api.deps import ConfigDep, SessionDep
from central.db.models import Alert, AlertNotification, Silence
from central.web.deps import AccountDep, ReviewerDep, render

log = logging.getLogger(__name__)
router = APIRouter()
RECENT = timedelta(days=3)
TAKEN = "该告警已被接警或已结束 already taken or closed"


@router.get("/alerts")
def alerts_page(
    request: Request, session: SessionDep, config: ConfigDep, account: AccountDep
) -> Response:
    now = datetime.now(UTC)
    alerts = session.scalars(
        sa.select(Alert)
        .where(
            *account.scope.where(Alert.site),
            sa.or_(Alert.state.in_(["triggered", "notified"]), Alert.last_event_at >= now - RECENT),
        )
        .order_by(Alert.state.in_(["triggered", "notified"]).desc(), Alert.opened_at.desc())
        .limit(100)
    ).all()
    messages: dict[int, list[AlertNotification]] = {}
    ids = [a.id for a in alerts]
    if ids:
        for row in session.scalars(
            sa.select(AlertNotification)
            .where(AlertNotification.alert_id.in_(ids))
            .order_by(AlertNotification.id)
        ):
            messages.setdefault(row.alert_id, []).append(row)
    response: Response = render(
        request,
        "alerts.html",
        config,
        account,
        page="alerts",
        alerts=alerts,
        messages=messages,
        now=now,
        paging=request.app.state.pager is not None,
        silences=alerting.current_silences(
            session, account.scope.visible(sorted(config.sites)), now
        ),
        sites=account.scope.visible(sorted(config.sites)),
        window=timedelta(hours=4),
    )
    return response


@router.post("/alerts/{alert_id}/ack")
def acknowledge(
    request: Request, session: SessionDep, account: ReviewerDep, alert_id: int
) -> Response:
    alert = session.get(Alert, alert_id)
    if alert is None or not account.scope.allows(alert.site):
        raise HTTPException(status_code=404)
    pager: Pager | None = request.app.state.pager
    if pager is None:
        raise HTTPException(status_code=503, detail="告警升级未启用 escalation is not configured")
    session.rollback()  # the pager takes it in its own transaction
    if pager.acknowledge(alert_id=alert_id, by=account.name, now=datetime.now(UTC)) is None:
        raise HTTPException(
            status_code=409, detail="该告警已被接警或已结束 already taken or closed"
        )
    return RedirectResponse("/alerts", status_code=303)


@router.post("/alerts/{alert_id}/resolve")
def resolve(session: SessionDep, account: ReviewerDep, alert_id: int) -> Response:
    alert = session.get(Alert, alert_id)
    if alert is None or not account.scope.allows(alert.site):
        raise HTTPException(status_code=404)
    if not alerting.resolve(session=session, alert_id=alert_id, now=datetime.now(UTC)):
        raise HTTPException(status_code=409, detail="该告警已结束 already closed")
    session.commit()
    log.info("alert %d resolved by %s", alert_id, account.name)
    return RedirectResponse("/alerts", status_code=303)


@router.post("/alerts/silences")
def add_silence(
    session: SessionDep,
    config: ConfigDep,
    account: ReviewerDep,
    site: Annotated[str, Form(max_length=32)],
    starts_at: Annotated[datetime, Form()],
    ends_at: Annotated[datetime, Form()],
    camera: Annotated[str, Form(max_length=64)] = "",
    reason: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    if site not in config.sites or not account.scope.allows(site):
        raise HTTPException(status_code=404, detail="无此站点 no such site")
    tz = ZoneInfo(config.timezone)  # a datetime-local field carries no offset: station time
    try:
        silence = alerting.add_silence(
            session=session,
            site=site,
            camera=camera,
            starts_at=starts_at if starts_at.tzinfo else starts_at.replace(tzinfo=tz),
            ends_at=ends_at if ends_at.tzinfo else ends_at.replace(tzinfo=tz),
            by=account.name,
            reason=reason,
            now=datetime.now(UTC),
        )
    except alerting.SilenceError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    session.commit()
    log.info(
        "silence %d: %s %s %s-%s by %s (%s)",
        silence.id,
        site,
        silence.camera or "all cameras",
        silence.starts_at,
        silence.ends_at,
        account.name,
        silence.reason,
    )
    return RedirectResponse("/alerts", status_code=303)


@router.post("/alerts/silences/{silence_id}/end")
def end_silence(session: SessionDep, account: ReviewerDep, silence_id: int) -> Response:
    silence = session.get(Silence, silence_id)
    if silence is None or not account.scope.allows(silence.site):
        raise HTTPException(status_code=404)
    if alerting.end_silence(session=session, silence_id=silence_id, now=datetime.now(UTC)) is None:
        raise HTTPException(status_code=409, detail="该维护时段已结束 already over")
    session.commit()
    log.info("silence %d ended by %s", silence_id, account.name)
    return RedirectResponse("/alerts", status_code=303)
