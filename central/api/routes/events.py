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
    Box,
    Category,
    CommandName,
    CommandPayload,
    EventKind,
    RuleName,
    Severity,
)
from broker.topics import ID_PATTERN, command_topic
from broker.validate import encode
from central import crud, messages
from central.api.deps import CommandDep, CurrentStaff, SessionDep, get_current_staff
from central.db.models import REVIEW_ACTION_BACKGROUND, REVIEW_DISMISSED
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


@router.get("", response_model=EventsPublic)
def read_events(
    session: SessionDep,
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
    rows, total = crud.list_events(
        session=session,
        site=site,
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
def read_event(session: SessionDep, event_id: uuid.UUID) -> EventPublic:
    """One event by its event_id; 404 when unknown."""
    row = crud.get_event(session=session, event_id=str(event_id))
    if row is None:
        raise HTTPException(status_code=404, detail=messages.EVENT_NOT_FOUND)
    return EventPublic.model_validate(row)


@router.get("/{event_id}/reviews", response_model=ReviewsPublic)
def read_reviews(session: SessionDep, event_id: uuid.UUID) -> ReviewsPublic:
    """Every decision staff made on the event, oldest first; 404 when the event is unknown."""
    if crud.get_event(session=session, event_id=str(event_id)) is None:
        raise HTTPException(status_code=404, detail=messages.EVENT_NOT_FOUND)
    rows = crud.list_reviews(session=session, event_id=str(event_id))
    return ReviewsPublic(
        event_id=str(event_id),
        data=[ReviewPublic.model_validate(r) for r in rows],
        count=len(rows),
    )


@router.post("/{event_id}/review", response_model=EventPublic)
def review_event(
    session: SessionDep, staff: CurrentStaff, event_id: uuid.UUID, review: ReviewCreate
) -> EventPublic:
    """Confirm or dismiss an event as the authenticated staff member; dismissed anomalies no
    longer count in reports."""
    row = crud.review_event(
        session=session,
        event_id=str(event_id),
        decision=review.decision,
        reviewer=staff.name,
        note=review.note,
        at=datetime.now(UTC),
    )
    if row is None:
        raise HTTPException(status_code=404, detail=messages.EVENT_NOT_FOUND)
    log.info("event %s %s by %s: %s", event_id, review.decision, staff.name, review.note or "-")
    session.commit()
    session.refresh(row)
    return EventPublic.model_validate(row)


@router.post("/{event_id}/background", response_model=EventPublic)
def mark_background(
    session: SessionDep,
    staff: CurrentStaff,
    send: CommandDep,
    event_id: uuid.UUID,
    body: BackgroundCreate,
) -> EventPublic:
    """A staff member judges a detected object to be scenery (a stump, a decoy): the node is
    told to mask that box from now on, and the event is dismissed in their name."""
    row = crud.get_event(session=session, event_id=str(event_id))
    if row is None:
        raise HTTPException(status_code=404, detail=messages.EVENT_NOT_FOUND)
    if not 0 <= body.box_index < len(row.boxes):
        raise HTTPException(status_code=422, detail=messages.NO_SUCH_BOX)
    command = CommandPayload(
        site=row.site,
        node=row.node,
        command=CommandName.BACKGROUND,
        camera=row.camera,
        box=Box.model_validate(row.boxes[body.box_index]),
        sent_at=datetime.now(UTC),
    )
    if not send(command_topic(row.site, row.node), encode(command)):
        raise HTTPException(status_code=503, detail=messages.COMMAND_NOT_SENT)
    crud.review_event(
        session=session,
        event_id=str(event_id),
        decision=REVIEW_DISMISSED,
        reviewer=staff.name,
        note=messages.BACKGROUND_NOTE.format(note=body.note or "-"),
        at=datetime.now(UTC),
        action=REVIEW_ACTION_BACKGROUND,
    )
    log.info("event %s box %d marked background by %s", event_id, body.box_index, staff.name)
    session.commit()
    session.refresh(row)
    return EventPublic.model_validate(row)
