"""Node supervision data: sequence high-water marks, missing ranges, presence and outage events.

Each node numbers its events 1, 2, 3, ...; central keeps per node the contiguous high-water mark
(every event up to it is stored), the highest number stored, and the missing ranges between them.
A node that goes silent or whose last will arrives becomes `offline` and gets one camera_health
anomaly per outage: an equipment fault, recognisable as such by its rule and its category
(camera), like the camera_health events the nodes raise themselves, never a wildlife anomaly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from broker.payloads import (
    Category,
    EventKind,
    EventPayload,
    HeartbeatPayload,
    NodeState,
    RuleName,
    Severity,
    StatusPayload,
)
from central import crud, messages
from central.db.models import Event, Node, NodeOutage, SeqGap

# Rule and category of the outage event: the ones of the edge's camera_health events, so reports
# and filters put a dark node with the dark cameras (equipment), not with the wildlife.
OFFLINE_RULE = RuleName.CAMERA_HEALTH
OFFLINE_CATEGORY = Category.CAMERA
# Central-made events carry no node sequence number; 0 keeps them out of every node's numbering.
CENTRAL_SEQ = 0


@dataclass(frozen=True, slots=True)
class GapRequest:
    """A missing range central is about to ask a node for."""

    site: str
    node: str
    from_seq: int
    to_seq: int


def _ensure(session: Session, site: str, node: str) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Node).values(site=site, node=node, last_seq=0)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["site", "node"]))


def track_sequences(
    *, session: Session, site: str, node: str, seqs: Iterable[int], now: datetime
) -> None:
    """Account for newly stored event numbers of one node: advance marks, open or close gaps."""
    wanted = sorted(set(seqs))
    if not wanted:
        return
    _ensure(session, site, node)
    row = session.scalars(
        sa.select(Node).where(Node.site == site, Node.node == node).with_for_update()
    ).one()
    gaps = list(
        session.scalars(
            sa.select(SeqGap)
            .where(SeqGap.site == site, SeqGap.node == node)
            .order_by(SeqGap.from_seq)
        )
    )
    top = row.max_seq
    for seq in wanted:
        if seq > top:
            if seq > top + 1:
                gap = SeqGap(
                    site=site, node=node, from_seq=top + 1, to_seq=seq - 1, detected_at=now
                )
                session.add(gap)
                gaps.append(gap)
            top = seq
            continue
        for gap in gaps:
            if gap.from_seq <= seq <= gap.to_seq:
                _fill(session, gaps, gap, seq)
                break
    row.max_seq = top
    row.contiguous_seq = min((g.from_seq for g in gaps), default=top + 1) - 1


def _fill(session: Session, gaps: list[SeqGap], gap: SeqGap, seq: int) -> None:
    if gap.from_seq == gap.to_seq:
        gaps.remove(gap)
        if gap in session.new:
            session.expunge(gap)
        else:
            session.delete(gap)
    elif seq == gap.from_seq:
        gap.from_seq += 1
    elif seq == gap.to_seq:
        gap.to_seq -= 1
    else:
        tail = SeqGap(
            site=gap.site,
            node=gap.node,
            from_seq=seq + 1,
            to_seq=gap.to_seq,
            detected_at=gap.detected_at,
            requested_at=gap.requested_at,
            requests=gap.requests,
        )
        gap.to_seq = seq - 1
        session.add(tail)
        gaps.append(tail)
        gaps.sort(key=lambda g: g.from_seq)


def missing(*, session: Session, site: str | None = None, node: str | None = None) -> list[SeqGap]:
    """Missing ranges, optionally of one site or node, in order."""
    stmt = sa.select(SeqGap).order_by(SeqGap.site, SeqGap.node, SeqGap.from_seq)
    if site is not None:
        stmt = stmt.where(SeqGap.site == site)
    if node is not None:
        stmt = stmt.where(SeqGap.node == node)
    return list(session.scalars(stmt))


def list_nodes(*, session: Session, site: str | None = None) -> Sequence[Node]:
    """All known nodes (optionally of one site) with state, marks and last heartbeat."""
    stmt = sa.select(Node).order_by(Node.site, Node.node)
    if site is not None:
        stmt = stmt.where(Node.site == site)
    return session.scalars(stmt).all()


def get_node(*, session: Session, site: str, node: str) -> Node | None:
    """One node by its ids."""
    return session.get(Node, (site, node))


def claim_gap_requests(
    *,
    session: Session,
    now: datetime,
    grace_s: float,
    interval_s: float,
    max_requests: int,
    limit: int = 100,
) -> list[GapRequest]:
    """Gaps due for a resend request; marks them requested (commit, then publish)."""
    due = session.scalars(
        sa.select(SeqGap)
        .where(
            SeqGap.detected_at <= now - timedelta(seconds=grace_s),
            SeqGap.requests < max_requests,
            sa.or_(
                SeqGap.requested_at.is_(None),
                SeqGap.requested_at <= now - timedelta(seconds=interval_s),
            ),
        )
        .order_by(SeqGap.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for gap in due:
        gap.requested_at = now
        gap.requests += 1
    return [GapRequest(g.site, g.node, g.from_seq, g.to_seq) for g in due]


# -- presence -------------------------------------------------------------------------------------
def record_heartbeat(*, session: Session, payload: HeartbeatPayload, received_at: datetime) -> None:
    """Store a heartbeat; a heartbeat from a node marked offline ends its outage."""
    crud.record_heartbeat(session=session, payload=payload, received_at=received_at)
    _back_online(session, payload.site, payload.node, received_at)


def record_status(
    *, session: Session, payload: StatusPayload, received_at: datetime
) -> EventPayload | None:
    """Store a retained status; an `offline` (the last will) raises the outage event at once."""
    crud.record_status(session=session, payload=payload, received_at=received_at)
    if payload.state is NodeState.ONLINE:
        _back_online(session, payload.site, payload.node, received_at)
        return None
    return _raise_offline(session, payload.site, payload.node, received_at, silent_s=None)


def _back_online(session: Session, site: str, node: str, now: datetime) -> None:
    session.execute(
        sa.update(Node)
        .where(Node.site == site, Node.node == node, Node.offline_event_id.is_not(None))
        .values(offline_event_id=None, state=NodeState.ONLINE.value, state_at=now)
    )
    session.execute(
        sa.update(NodeOutage)
        .where(NodeOutage.site == site, NodeOutage.node == node, NodeOutage.ended_at.is_(None))
        .values(ended_at=now)
    )


def mark_silent_offline(
    *, session: Session, now: datetime, offline_after_s: float
) -> list[EventPayload]:
    """Nodes without a heartbeat for offline_after_s become offline; returns the events raised."""
    silent = session.execute(
        sa.select(Node.site, Node.node, Node.last_seen).where(
            Node.offline_event_id.is_(None),
            Node.last_seen.is_not(None),
            Node.last_seen < now - timedelta(seconds=offline_after_s),
        )
    ).all()
    raised = []
    for site, node, last_seen in silent:
        silent_s = (now - last_seen).total_seconds() if last_seen is not None else 0.0
        event = _raise_offline(session, site, node, now, silent_s=silent_s, since=last_seen)
        if event is not None:
            raised.append(event)
    return raised


def _raise_offline(
    session: Session,
    site: str,
    node: str,
    now: datetime,
    *,
    silent_s: float | None,
    since: datetime | None = None,
) -> EventPayload | None:
    """Claim the outage (conditional UPDATE, so once per outage) and store its event."""
    event_id = uuid.uuid4()
    claimed = cast(
        CursorResult[Any],
        session.execute(
            sa.update(Node)
            .where(Node.site == site, Node.node == node, Node.offline_event_id.is_(None))
            .values(offline_event_id=str(event_id), state=NodeState.OFFLINE.value, state_at=now)
        ),
    )
    if claimed.rowcount != 1:
        return None  # already alerted for this outage
    # a silent node has been away since its last message, not since it was noticed
    session.add(NodeOutage(site=site, node=node, started_at=since or now))
    zh, en = messages.node_offline(node=node, silent_s=silent_s)
    event = EventPayload(
        event_id=event_id,
        seq=1,  # the model needs a positive number; the stored row gets CENTRAL_SEQ
        site=site,
        node=node,
        camera=node,
        kind=EventKind.ANOMALY,
        category=OFFLINE_CATEGORY,
        captured_at=now,
        created_at=now,
        rule=OFFLINE_RULE,
        severity=Severity.ALERT,
        count=1,
        confidence=1.0,
        message_zh=zh,
        message_en=en,
        source="central",
    )
    row = crud.event_row(event, received_at=now)
    row["seq"] = CENTRAL_SEQ
    row["payload"]["seq"] = CENTRAL_SEQ
    session.execute(sa.insert(Event).values(**row))
    return event
