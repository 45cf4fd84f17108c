"""Data access: small functions with keyword-only arguments over the ORM models."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from broker.payloads import EventKind, EventPayload, HeartbeatPayload, StatusPayload
from central.db.models import (
    DEAD_LETTER_MAX_BYTES,
    DEAD_LETTER_MAX_REASON,
    DEAD_LETTER_MAX_TOPIC,
    REVIEW_ACTION_REVIEW,
    REVIEW_DISMISSED,
    DeadLetter,
    Event,
    EventReview,
    Node,
)


def upsert_insert(session: Session, table: Any) -> Any:
    """The dialect's INSERT, which has on_conflict_do_nothing/update on SQLite and PostgreSQL."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"database dialect {name!r} is not supported")


def event_row(payload: EventPayload, *, received_at: datetime) -> dict[str, Any]:
    """Column values of an event payload."""
    species = payload.species
    return {
        "event_id": str(payload.event_id),
        "seq": payload.seq,
        "site": payload.site,
        "node": payload.node,
        "camera": payload.camera,
        "kind": payload.kind.value,
        "category": payload.category.value,
        "rule": payload.rule,
        "severity": payload.severity.value,
        "count": payload.count,
        "confidence": payload.confidence,
        "species_scientific": species.scientific_name if species else None,
        "species_chinese": (species.chinese_name or None) if species else None,
        "species_confidence": species.confidence if species else None,
        "captured_at": payload.captured_at,
        "captured_until": payload.captured_until,
        "created_at": payload.created_at,
        "received_at": received_at,
        "message_zh": payload.message_zh,
        "message_en": payload.message_en,
        "source": payload.source,
        "model": payload.model,
        "boxes": [box.model_dump(mode="json") for box in payload.boxes],
        "payload": payload.model_dump(mode="json"),
    }


def insert_event(*, session: Session, payload: EventPayload, received_at: datetime) -> bool:
    """Store an event unless its event_id is already stored; True when it was new."""
    stmt = (
        upsert_insert(session, Event)
        .values(**event_row(payload, received_at=received_at))
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(Event.id)  # rowcount is not reliable here across drivers; RETURNING is
    )
    return session.execute(stmt).scalar_one_or_none() is not None


def insert_events(*, session: Session, events: Sequence[tuple[EventPayload, datetime]]) -> set[str]:
    """Store (event, received_at) pairs in few statements, skipping ids already stored (the ids
    must be distinct within the call); returns the ids that were new."""
    # Core executemany on the table: SQLAlchemy batches it into multi-row INSERTs
    # ("insertmanyvalues") with a cached compiled statement, which the ORM path does not.
    table = Event.__table__
    stmt = (
        upsert_insert(session, table)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(table.c.event_id)
    )
    rows = [event_row(p, received_at=at) for p, at in events]
    result = session.connection().execute(stmt, rows)
    return {str(v) for v in result.scalars()}


def _storable_text(text: str) -> str:
    """`text` with NUL replaced: PostgreSQL text columns refuse it (and a reason may quote it)."""
    return text.replace("\x00", "\ufffd")


def insert_dead_letter(
    *, session: Session, topic: str, payload: bytes, reason: str, received_at: datetime
) -> None:
    """Keep a message that broke the contract, truncated, with the reason; any text is stored."""
    session.add(
        DeadLetter(
            received_at=received_at,
            topic=_storable_text(topic[:DEAD_LETTER_MAX_TOPIC]),
            payload=_storable_text(
                payload[:DEAD_LETTER_MAX_BYTES].decode("utf-8", errors="replace")
            ),
            payload_size=len(payload),
            reason=_storable_text(reason[:DEAD_LETTER_MAX_REASON]),
        )
    )


def _ensure_node(session: Session, site: str, node: str) -> None:
    session.execute(
        upsert_insert(session, Node)
        .values(site=site, node=node, last_seq=0)
        .on_conflict_do_nothing(index_elements=["site", "node"])
    )


def record_heartbeat(*, session: Session, payload: HeartbeatPayload, received_at: datetime) -> None:
    """Remember a node's latest heartbeat; last_seq only ever grows."""
    _ensure_node(session, payload.site, payload.node)
    session.execute(
        sa.update(Node)
        .where(Node.site == payload.site, Node.node == payload.node)
        .values(
            last_seen=received_at,
            last_heartbeat=payload.model_dump(mode="json"),
            last_seq=sa.case(
                (Node.last_seq < payload.last_seq, payload.last_seq), else_=Node.last_seq
            ),
        )
    )


def record_status(*, session: Session, payload: StatusPayload, received_at: datetime) -> None:
    """Remember a node's retained online/offline state."""
    _ensure_node(session, payload.site, payload.node)
    session.execute(
        sa.update(Node)
        .where(Node.site == payload.site, Node.node == payload.node)
        .values(state=payload.state.value, state_at=payload.at or received_at)
    )


def list_events(
    *,
    session: Session,
    site: str | None = None,
    sites: Collection[str] | None = None,
    category: str | None = None,
    kind: str | None = None,
    rule: str | None = None,
    severity: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[Sequence[Event], int]:
    """Events matching the filters (`sites`: only these, None: every site), newest capture
    first, and the total count of matches."""
    conditions: list[sa.ColumnElement[bool]] = []
    if sites is not None:
        conditions.append(Event.site.in_(sorted(sites)))
    for column, value in (
        (Event.site, site),
        (Event.category, category),
        (Event.kind, kind),
        (Event.rule, rule),
        (Event.severity, severity),
    ):
        if value is not None:
            conditions.append(column == value)
    if since is not None:
        conditions.append(Event.captured_at >= since)
    if until is not None:
        conditions.append(Event.captured_at < until)
    total = session.scalar(sa.select(sa.func.count()).select_from(Event).where(*conditions)) or 0
    rows = session.scalars(
        sa.select(Event)
        .where(*conditions)
        .order_by(Event.captured_at.desc(), Event.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return rows, total


def get_event(*, session: Session, event_id: str) -> Event | None:
    """One event by its edge-made event_id."""
    return session.scalar(sa.select(Event).where(Event.event_id == event_id))


def anomalies_in_window(*, session: Session, start: datetime, end: datetime) -> Sequence[Event]:
    """Anomalies captured in [start, end) and not dismissed, oldest first."""
    return session.scalars(
        sa.select(Event)
        .where(
            Event.kind == EventKind.ANOMALY.value,
            Event.captured_at >= start,
            Event.captured_at < end,
            Event.review_status != REVIEW_DISMISSED,
        )
        .order_by(Event.captured_at, Event.id)
    ).all()


@dataclass(frozen=True, slots=True)
class ObservationGroup:
    """Observations of one site, category, species and camera in a window, summed in SQL."""

    site: str
    category: str
    species_scientific: str | None
    species_chinese: str | None
    camera: str
    events: int
    total: int
    most: int


def observation_groups(
    *, session: Session, start: datetime, end: datetime
) -> list[ObservationGroup]:
    """Observation events captured in [start, end), grouped: a day of 100,000 is a few thousand
    rows, never 100,000 ORM objects."""
    keys = (
        Event.site,
        Event.category,
        Event.species_scientific,
        Event.species_chinese,
        Event.camera,
    )
    rows = session.execute(
        sa.select(*keys, sa.func.count(), sa.func.sum(Event.count), sa.func.max(Event.count))
        .where(
            Event.kind == EventKind.OBSERVATION.value,
            Event.captured_at >= start,
            Event.captured_at < end,
        )
        .group_by(*keys)
    ).all()
    return [ObservationGroup(*row) for row in rows]


def review_event(
    *,
    session: Session,
    event_id: str,
    decision: str,
    reviewer: str,
    note: str,
    at: datetime,
    action: str = REVIEW_ACTION_REVIEW,
    reason: str | None = None,
    species: str | None = None,
    box_index: int | None = None,
) -> Event | None:
    """Record a person's decision on an event: one more entry in its review history, and the
    latest decision on the event row (with the species named, if any, and its box); None when
    the event is unknown."""
    # Locked (PostgreSQL; SQLite serialises writers anyway) so two reviewers at once cannot leave
    # the row showing the earlier decision while the history ends with the later one.
    row = session.scalar(
        sa.select(Event)
        .where(Event.event_id == event_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        return None
    session.add(
        EventReview(
            event_id=event_id,
            decision=decision,
            action=action,
            reviewer=reviewer,
            note=note,
            reviewed_at=at,
            before=row.review_status,
            reason=reason,
            species=species,
            box_index=box_index,
        )
    )
    if row.reviewed_at is None or at >= row.reviewed_at:
        row.review_status = decision
        row.reviewer = reviewer
        row.review_note = note
        row.reviewed_at = at
        row.confirmed_species = species
        row.confirmed_box = box_index
    session.flush()
    return row


def list_reviews(*, session: Session, event_id: str) -> Sequence[EventReview]:
    """Every decision on an event, oldest first."""
    return session.scalars(
        sa.select(EventReview)
        .where(EventReview.event_id == event_id)
        .order_by(EventReview.reviewed_at, EventReview.id)
    ).all()
