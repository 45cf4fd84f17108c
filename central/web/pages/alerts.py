"""告警 alerts: the incidents being escalated in the person's sites, each message's fate
(submitted, delivered, failed with the provider's code, held back by a cap), and the button
that takes an alert (接警) as a reply with its code would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from central.alerts.pager import Pager
from central.api.deps import ConfigDep, SessionDep
from central.db.models import Alert, AlertNotification
from central.web.deps import AccountDep, ReviewerDep, render

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
