"""事件 events: browse and search, one event with its history, decisions (one or a selection),
and exports of the filtered set (CSV, XLSX, MegaDetector JSON)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from broker.topics import ID_PATTERN
from central import messages, review
from central.api.deps import ConfigDep, SessionDep, get_command_sender_or_none
from central.db.models import REVIEW_CONFIRMED, REVIEW_DISMISSED, Event
from central.web import export, queries
from central.web.deps import AccountDep, ReviewerDep, render

log = logging.getLogger(__name__)
router = APIRouter()

PAGE_SIZE = 50
Text = Annotated[str, Query(max_length=120)]


def _filters(
    config: ConfigDep,
    date_from: date | None,
    date_to: date | None,
    site: str | None,
    camera: str | None,
    rule: str | None,
    category: str | None,
    species: str | None,
    review_state: str | None,
    kind: str | None,
) -> queries.Filters:
    tz = ZoneInfo(config.timezone)
    return queries.Filters(
        since=datetime.combine(date_from, time(), tz) if date_from else None,
        until=datetime.combine(date_to + timedelta(days=1), time(), tz) if date_to else None,
        site=site or None,
        camera=camera or None,
        rule=rule or None,
        category=category or None,
        species=species or None,
        review=review_state or None,
        kind=kind or None,
    )


class FilterParams:
    """The browse filters as query parameters (shared by the page and the exports)."""

    def __init__(
        self,
        date_from: Annotated[date | None, Query(alias="from")] = None,
        date_to: Annotated[date | None, Query(alias="to")] = None,
        site: Annotated[str | None, Query(pattern=f"^(|{ID_PATTERN[1:-1]})$")] = None,
        camera: Annotated[str | None, Query(max_length=64)] = None,
        rule: Annotated[str | None, Query(max_length=48)] = None,
        category: Annotated[str | None, Query(max_length=16)] = None,
        species: Annotated[str | None, Query(max_length=120)] = None,
        review_state: Annotated[str | None, Query(alias="review", max_length=16)] = None,
        kind: Annotated[str | None, Query(max_length=16)] = None,
    ) -> None:
        self.values = {
            "from": date_from.isoformat() if date_from else "",
            "to": date_to.isoformat() if date_to else "",
            "site": site or "",
            "camera": camera or "",
            "rule": rule or "",
            "category": category or "",
            "species": species or "",
            "review": review_state or "",
            "kind": kind or "",
        }
        self.args = (date_from, date_to, site, camera, rule, category, species, review_state, kind)


@router.get("/events")
def browse(
    request: Request,
    session: SessionDep,
    config: ConfigDep,
    account: AccountDep,
    params: Annotated[FilterParams, Depends()],
    page: Annotated[int, Query(ge=1, le=20000)] = 1,
    view: Literal["list", "gallery"] = "list",
) -> Response:
    filters = _filters(config, *params.args)
    rows, total = queries.browse(
        session=session,
        scope=account.scope,
        filters=filters,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    query = urlencode({k: v for k, v in params.values.items() if v})
    response: Response = render(
        request,
        "events.html",
        config,
        account,
        page="events",
        rows=rows,
        total=total,
        number=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        values=params.values,
        query=query,
        view=view,
        sites=account.scope.visible(sorted(config.sites)),
    )
    return response


@router.get("/events/export.{fmt}")
def export_events(
    request: Request,
    config: ConfigDep,
    account: AccountDep,
    params: Annotated[FilterParams, Depends()],
    fmt: Literal["csv", "xlsx", "md.json"],
) -> Response:
    filters = _filters(config, *params.args)
    rows = queries.iter_filtered(
        session_factory=request.app.state.session_factory, scope=account.scope, filters=filters
    )
    stamp = datetime.now(ZoneInfo(config.timezone)).strftime("%Y%m%d-%H%M")
    writer = export.WRITERS[fmt]
    log.info("%s exported events as %s (%s)", account.name, fmt, params.values)
    return StreamingResponse(
        writer(rows, ZoneInfo(config.timezone)),
        media_type=export.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="wildwatch-events-{stamp}.{fmt}"'},
    )


def _event_or_404(session: SessionDep, account: AccountDep, event_id: uuid.UUID) -> Event:
    row = queries.event_in_scope(session=session, scope=account.scope, event_id=str(event_id))
    if row is None:
        raise HTTPException(status_code=404, detail=messages.EVENT_NOT_FOUND)
    return row


@router.get("/events/{event_id}")
def event_page(
    request: Request,
    session: SessionDep,
    config: ConfigDep,
    account: AccountDep,
    event_id: uuid.UUID,
) -> Response:
    """One event; opening it is recorded (an item counts as reviewed only once opened)."""
    row = _event_or_404(session, account, event_id)
    queries.record_open(
        session=session, event_id=row.event_id, user_name=account.name, now=datetime.now(UTC)
    )
    session.commit()
    reviews, opens = queries.history(session=session, event_id=row.event_id)
    fragment = bool(request.headers.get("HX-Request"))
    response: Response = render(
        request,
        "_detail.html" if fragment else "event.html",
        config,
        account,
        page="events",
        event=row,
        reviews=reviews,
        opens=opens,
        similar=queries.similar_cases(session=session, row=row),
        case=queries.cases_for(session=session, event_ids=[row.event_id]).get(row.event_id),
        express=queries.express_for(session=session, event_id=row.event_id),
        now=datetime.now(UTC),
    )
    return response


def _reason(decision: str, code: str) -> review.DismissReason | None:
    """The dismissal reason a dismissal needs (None for a confirmation); 422 when missing."""
    if decision != REVIEW_DISMISSED:
        return None
    try:
        return review.DismissReason(code)
    except ValueError:
        raise HTTPException(
            status_code=422, detail="请选择排除原因 choose a reason to dismiss"
        ) from None


def _after(request: Request, event_id: str) -> Response:
    if request.headers.get("HX-Request"):
        # the queue removes the decided item; other pages reload the event
        return Response(status_code=200, headers={"HX-Trigger": f'{{"decided": "{event_id}"}}'})
    return RedirectResponse(f"/events/{event_id}", status_code=303)


def _must_have_opened(session: SessionDep, account: ReviewerDep, event_id: str) -> None:
    if not queries.opened_by(session=session, event_ids=[event_id], user_name=account.name):
        raise HTTPException(status_code=409, detail="请先打开该事件查看 open the event first")


@router.post("/events/{event_id}/review")
def review_event(
    request: Request,
    session: SessionDep,
    config: ConfigDep,
    account: ReviewerDep,
    event_id: uuid.UUID,
    decision: Annotated[Literal["confirmed", "dismissed"], Form()],
    reason_code: Annotated[str, Form(alias="reason", max_length=32)] = "",
    note: Annotated[str, Form(max_length=1000)] = "",
    open_case: Annotated[bool, Form()] = False,
    species: Annotated[str, Form(max_length=120)] = "",
    box_index: Annotated[int, Form(ge=0, le=199)] = 0,
) -> Response:
    row = _event_or_404(session, account, event_id)
    _must_have_opened(session, account, row.event_id)
    reason = _reason(decision, reason_code)
    if open_case and decision == REVIEW_CONFIRMED:
        queries.open_case(session=session, row=row, opened_by=account.name, now=datetime.now(UTC))
    # The species field belongs to confirming: a dismissal ignores what was typed in it. A
    # refused name raises before the commit, so nothing of this request is kept.
    named = (species.strip() or None) if decision == REVIEW_CONFIRMED else None
    try:
        review.decide(
            session=session,
            event_id=row.event_id,
            decision=decision,
            reviewer=account.name,
            note=note.strip(),
            at=datetime.now(UTC),
            reason=reason.value if reason else None,
            catalogue=config.species_catalogue,
            species=named,
            box_index=box_index if named else None,
        )
    except review.ReviewError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.detail) from exc
    session.commit()
    log.info("event %s %s by %s (console)", row.event_id, decision, account.name)
    return _after(request, row.event_id)


@router.post("/events/{event_id}/background")
def mark_background(
    request: Request,
    session: SessionDep,
    account: ReviewerDep,
    event_id: uuid.UUID,
    box_index: Annotated[int, Form(ge=0, le=199)] = 0,
    note: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    row = _event_or_404(session, account, event_id)
    _must_have_opened(session, account, row.event_id)
    try:
        review.mark_background(
            session=session,
            send=get_command_sender_or_none(request),
            row=row,
            box_index=box_index,
            note=note.strip(),
            reviewer=account.name,
            at=datetime.now(UTC),
        )
    except review.ReviewError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.detail) from exc
    session.commit()
    return _after(request, row.event_id)


@router.post("/events/bulk")
def bulk_review(
    request: Request,
    session: SessionDep,
    config: ConfigDep,
    account: ReviewerDep,
    event_ids: Annotated[list[uuid.UUID], Form(max_length=200)],
    decision: Annotated[Literal["confirmed", "dismissed"], Form()],
    reason_code: Annotated[str, Form(alias="reason", max_length=32)] = "",
) -> Response:
    """The same decision on a selection; items this person has not opened are left as they are
    and said so."""
    reason = _reason(decision, reason_code)
    wanted = [str(e) for e in dict.fromkeys(event_ids)]
    opened = queries.opened_by(session=session, event_ids=wanted, user_name=account.name)
    visible = queries.visible_ids(session=session, scope=account.scope, event_ids=opened)
    done = [e for e in wanted if e in visible]
    skipped = [e for e in wanted if e not in visible]
    now = datetime.now(UTC)
    for event_id in done:
        review.decide(
            session=session,
            event_id=event_id,
            decision=decision,
            reviewer=account.name,
            note="",
            at=now,
            reason=reason.value if reason else None,
            catalogue=config.species_catalogue,
        )
    session.commit()
    log.info("bulk %s by %s: %d done, %d skipped", decision, account.name, len(done), len(skipped))
    label = "确认 confirmed" if decision == REVIEW_CONFIRMED else "排除 dismissed"
    response: Response = render(
        request, "_bulk_result.html", config, account, done=done, skipped=skipped, label=label
    )
    response.headers["HX-Trigger"] = '{"bulkDone": ' + str(len(done)) + "}"
    return response
