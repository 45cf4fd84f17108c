"""Events: list with filters, and one by id."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from broker.payloads import Box, CommandName, CommandPayload
from broker.topics import command_topic
from broker.validate import encode
from central import crud, messages
from central.api.deps import CommandDep, SessionDep
from central.schemas import BackgroundCreate, EventPublic, EventsPublic, ReviewCreate

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


@router.post("/{event_id}/background", response_model=EventPublic)
def mark_background(
    session: SessionDep, send: CommandDep, event_id: str, body: BackgroundCreate
) -> EventPublic:
    """A reviewer judges a detected object to be scenery (a stump, a decoy): the node is told
    to mask that box from now on, and the event is dismissed."""
    row = crud.get_event(session=session, event_id=event_id)
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
        event_id=event_id,
        decision="dismissed",
        reviewer=body.reviewer,
        note=messages.BACKGROUND_NOTE.format(note=body.note or "-"),
        at=datetime.now(UTC),
    )
    session.commit()
    session.refresh(row)
    return EventPublic.model_validate(row)
