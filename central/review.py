"""Staff decisions on events, shared by the API and the console: confirm, dismiss with a reason,
mark a detected box as background (the node is told to mask it)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from broker.payloads import Box, CommandName, CommandPayload
from broker.topics import command_topic
from broker.validate import encode
from central import crud, express, messages
from central.db.models import (
    REVIEW_ACTION_BACKGROUND,
    REVIEW_CONFIRMED,
    REVIEW_DISMISSED,
    Event,
)
from models.species import Catalogue

log = logging.getLogger(__name__)

CommandSender = Callable[[str, bytes], bool]


class DismissReason(StrEnum):
    """Why a reviewer dismissed an event (kept with the decision, counted in statistics)."""

    BACKGROUND = "background"
    WRONG_SPECIES = "wrong_species"
    DUPLICATE = "duplicate"
    OTHER = "other"

    @property
    def label(self) -> str:
        return DISMISS_LABELS[self]


DISMISS_LABELS = {
    DismissReason.BACKGROUND: "背景误报 background",
    DismissReason.WRONG_SPECIES: "物种识别错误 wrong species",
    DismissReason.DUPLICATE: "重复 duplicate",
    DismissReason.OTHER: "其他 other",
}


class ReviewError(Exception):
    """A decision that cannot be carried out; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def decide(
    *,
    session: Session,
    event_id: str,
    decision: str,
    reviewer: str,
    note: str,
    at: datetime,
    catalogue: Catalogue,
    reason: str | None = None,
    species: str | None = None,
    box_index: int | None = None,
) -> Event | None:
    """Record a confirm or dismiss decision (crud.review_event); a confirmed mortality cluster
    or protected animal's death also opens its express report and 2-hour clock.

    On confirming, `species` corrects (or confirms) the species of box `box_index` (default:
    the first): a scientific name of the catalogue, stored as the catalogue spells it.
    ReviewError (422) for a name not in the catalogue, a box the event does not have, a box
    given without a species (it would label nothing), or a species given with a dismissal."""
    if species is not None or box_index is not None:
        if decision != REVIEW_CONFIRMED:
            raise ReviewError(422, messages.SPECIES_ONLY_ON_CONFIRM)
        species, box_index = _named_species(session, event_id, catalogue, species, box_index)
    row = crud.review_event(
        session=session,
        event_id=event_id,
        decision=decision,
        reviewer=reviewer,
        note=note,
        at=at,
        reason=reason,
        species=species,
        box_index=box_index,
    )
    if row is not None and decision == REVIEW_CONFIRMED:
        express.open_if_due(session=session, row=row, catalogue=catalogue, confirmed_at=at)
    return row


def _named_species(
    session: Session,
    event_id: str,
    catalogue: Catalogue,
    species: str | None,
    box_index: int | None,
) -> tuple[str | None, int | None]:
    """The catalogue's spelling of `species` and the box it is checked against the event."""
    if species is None and box_index is not None:
        # a box alone names nothing: the dataset export and the gallery would read it as the
        # reviewer vouching for the node's species on that box, which they did not say
        raise ReviewError(422, messages.BOX_WITHOUT_SPECIES)
    if species is not None:
        known = catalogue.get(species)
        if known is None:
            raise ReviewError(422, messages.UNKNOWN_SPECIES.format(name=species))
        species = known.scientific_name
    if box_index is not None:
        row = crud.get_event(session=session, event_id=event_id)
        if row is not None and not 0 <= box_index < len(row.boxes):
            raise ReviewError(422, messages.NO_SUCH_BOX)
    return species, box_index


def mark_background(
    *,
    session: Session,
    send: CommandSender | None,
    row: Event,
    box_index: int,
    note: str,
    reviewer: str,
    at: datetime,
) -> None:
    """Tell the node to mask box `box_index` of `row` from now on, then dismiss the event in the
    reviewer's name. Nothing is recorded when the command could not be published."""
    if not 0 <= box_index < len(row.boxes):
        raise ReviewError(422, messages.NO_SUCH_BOX)
    if send is None:
        raise ReviewError(503, messages.NO_BROKER)
    command = CommandPayload(
        site=row.site,
        node=row.node,
        command=CommandName.BACKGROUND,
        camera=row.camera,
        box=Box.model_validate(row.boxes[box_index]),
        sent_at=at,
    )
    if not send(command_topic(row.site, row.node), encode(command)):
        raise ReviewError(503, messages.COMMAND_NOT_SENT)
    crud.review_event(
        session=session,
        event_id=row.event_id,
        decision=REVIEW_DISMISSED,
        reviewer=reviewer,
        note=messages.BACKGROUND_NOTE.format(note=note or "-"),
        at=at,
        action=REVIEW_ACTION_BACKGROUND,
        reason=DismissReason.BACKGROUND.value,
    )
    log.info("event %s box %d marked background by %s", row.event_id, box_index, reviewer)
