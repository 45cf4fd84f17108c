"""待处理 the review queue: unreviewed anomalies by severity, then observations."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from central.api.deps import ConfigDep, SessionDep
from central.web import queries
from central.web.deps import AccountDep, render

router = APIRouter()


@router.get("/")
def home() -> Response:
    return RedirectResponse("/queue", status_code=303)


@router.get("/queue")
def queue_page(
    request: Request, session: SessionDep, config: ConfigDep, account: AccountDep
) -> Response:
    queue = queries.review_queue(session=session, scope=account.scope, user_name=account.name)
    response: Response = render(request, "queue.html", config, account, queue=queue, page="queue")
    return response
