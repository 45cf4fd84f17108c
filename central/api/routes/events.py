"""Events: list with filters, one by id, a staff member's review and the review history (staff
token required)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from broker.payloads import (
    Category,
    EventKind,
    RuleName,
    Severity,
)
from broker.topics import ID_PATTERN
from central import crud, messages, review
from central.api.deps import (
    CommandDep,
    ConfigDep,
    CurrentStaff,
    SessionDep,
    StaffScope,
    get_current_staff,
)
from central.db.models import Event
from central.schemas import (
    BackgroundCreate,
    EventPublic,
    EventsPublic,
    QueryTime,
    ReviewCreate,
    ReviewPublic,
    ReviewsPublic,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/events", tags=["events"], dependencies=[Depends(get_current_staff)])

MAX_PAGE = 1000
# Deeper pages make the database walk and discard that many rows; a window (since/until) is
# the way to reach old events, and the bound keeps the number inside a 64-bit OFFSET.
MAX_OFFSET = 1_000_000


def _offset(value: int) -> int:
    if value > MAX_OFFSET:
        raise PydanticCustomError(
            "offset_too_large", messages.OFFSET_TOO_LARGE.format(max=MAX_OFFSET)
        )
    return value


def _visible(session: SessionDep, scope: StaffScope, event_id: uuid.UUID) -> Event:
    """The event when it exists and the token may see its site; else 404 (the same answer as
    for a missing event: another site's events are not told apart from missing ones)."""
    row = crud.get_event(session=session, event_id=str(event_id))
    if row is None or not scope.allows(row.site):
        raise HTTPException(status_code=404, detail=messages.EVENT_NOT_FOUND)
    return row


@router.get("", response_model=EventsPublic)
def read_events(
    session: SessionDep,
    scope: StaffScope,
    site: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    category: Category | None = None,
    kind: EventKind | None = None,
    rule: RuleName | None = None,
    severity: Severity | None = None,
    since: Annotated[QueryTime | None, Query(description="captured at or after (ISO 8601)")] = None,
    until: Annotated[QueryTime | None, Query(description="captured before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0), AfterValidator(_offset)] = 0,
) -> EventsPublic:
    """Events newest first; times need a UTC offset and must lie in 1970..2100 (as on the wire)."""
    if site is not None and not scope.allows(site):
        return EventsPublic(data=[], count=0)
    rows, total = crud.list_events(
        session=session,
        site=site,
        sites=scope.sites,
        category=category.value if category else None,
        kind=kind.value if kind else None,
        rule=rule,
        severity=severity.value if severity else None,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return EventsPublic(data=[EventPublic.model_validate(r) for r in rows], count=total)


@router.get("/{event_id}", response_model=EventPublic)
def read_event(session: SessionDep, scope: StaffScope, event_id: uuid.UUID) -> EventPublic:
    """One event by its event_id; 404 when unknown."""
    return EventPublic.model_validate(_visible(session, scope, event_id))


@router.get("/{event_id}/reviews", response_model=ReviewsPublic)
def read_reviews(session: SessionDep, scope: StaffScope, event_id: uuid.UUID) -> ReviewsPublic:
    """Every decision staff made on the event, oldest first; 404 when the event is unknown."""
    _visible(session, scope, event_id)
    rows = crud.list_reviews(session=session, event_id=str(event_id))
    return ReviewsPublic(
        event_id=str(event_id),
        data=[ReviewPublic.model_validate(r) for r in rows],
        count=len(rows),
    )


@router.post("/{event_id}/review", response_model=EventPublic)
def review_event(
    session: SessionDep,
    config: ConfigDep,
    staff: CurrentStaff,
    scope: StaffScope,
    event_id: uuid.UUID,
    body: ReviewCreate,
) -> EventPublic:
    """Confirm or dismiss an event as the authenticated staff member; dismissed anomalies no
    longer count in reports; a confirmed mortality cluster or protected animal's death starts
    its 2-hour express report. Confirming may name the species (`species`, from the station's
    catalogue, else 422) of a box (`box_index`, default the first): the station's gallery
    learns from it."""
    _visible(session, scope, event_id)
    try:
        row = review.decide(
            session=session,
            event_id=str(event_id),
            decision=body.decision,
            reviewer=staff.name,
            note=body.note,
            at=datetime.now(UTC),
            catalogue=config.species_catalogue,
            species=body.species,
            box_index=body.box_index,
        )
    except review.ReviewError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.detail) from exc
    if row is None:
        raise HTTPException(status_code=404, detail=messages.EVENT_NOT_FOUND)
    log.info("event %s %s by %s: %s", event_id, body.decision, staff.name, body.note or "-")
    session.commit()
    session.refresh(row)
    return EventPublic.model_validate(row)


@router.post("/{event_id}/background", response_model=EventPublic)
def mark_background(
    session: SessionDep,
    staff: CurrentStaff,
    scope: StaffScope,
    send: CommandDep,
    event_id: uuid.UUID,
    body: BackgroundCreate,
) -> EventPublic:
    """A staff member judges a detected object to be scenery (a stump, a decoy): the node is
    told to mask that box from now on, and the event is dismissed in their name."""
    row = _visible(session, scope, event_id)
    try:
        review.mark_background(
            session=session,
            send=send,
            row=row,
            box_index=body.box_index,
            note=body.note,
            reviewer=staff.name,
            at=datetime.now(UTC),
        )
    except review.ReviewError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.detail) from exc
    session.commit()
    session.refresh(row)
    return EventPublic.model_validate(row)
