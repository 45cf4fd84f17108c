"""Events: list with filters, and one by id."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from central import crud, messages
from central.api.deps import SessionDep
from central.schemas import EventPublic, EventsPublic, ReviewCreate

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/events", tags=["events"])

MAX_PAGE = 1000


@router.get("", response_model=EventsPublic)
def read_events(
    session: SessionDep,
    site: str | None = None,
    category: str | None = None,
    kind: str | None = None,
    rule: str | None = None,
    severity: str | None = None,
    since: Annotated[datetime | None, Query(description="captured at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="captured before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> EventsPublic:
    """Events newest first; naive `since`/`until` are rejected so no one guesses a zone."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(status_code=422, detail=messages.NAIVE_DATETIME.format(name=name))
    rows, total = crud.list_events(
        session=session,
        site=site,
        category=category,
        kind=kind,
        rule=rule,
        severity=severity,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return EventsPublic(data=[EventPublic.model_validate(r) for r in rows], count=total)


@router.get("/{event_id}", response_model=EventPublic)
def read_event(session: SessionDep, event_id: str) -> EventPublic:
    """One event by its event_id; 404 when unknown."""
    row = crud.get_event(session=session, event_id=event_id)
    if row is None:
        raise HTTPException(status_code=404, detail=messages.EVENT_NOT_FOUND)
    return EventPublic.model_validate(row)


@router.post("/{event_id}/review", response_model=EventPublic)
def review_event(session: SessionDep, event_id: str, review: ReviewCreate) -> EventPublic:
    """Confirm or dismiss an event; dismissed anomalies no longer count in reports."""
    row = crud.review_event(
        session=session,
        event_id=event_id,
        decision=review.decision,
        reviewer=review.reviewer,
        note=review.note,
        at=datetime.now(UTC),
    )
    if row is None:
        raise HTTPException(status_code=404, detail=messages.EVENT_NOT_FOUND)
    log.info("event %s %s by %s", event_id, review.decision, review.reviewer)
    session.commit()
    session.refresh(row)
    return EventPublic.model_validate(row)
