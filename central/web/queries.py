"""What the console's pages read from the database, always within the account's sites."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload, sessionmaker

from broker.payloads import EventKind, Severity
from central.accounts import Scope
from central.crud import upsert_insert
from central.db.models import (
    REVIEW_CONFIRMED,
    REVIEW_UNREVIEWED,
    Case,
    DeliveryAttempt,
    Event,
    EventOpen,
    EventReview,
    ExpressReport,
    Node,
    NodeOutage,
    ReportDelivery,
    ReportSignoff,
)

QUEUE_ANOMALIES = 50
QUEUE_OBSERVATIONS = 30
SIMILAR_CASES = 6
SEVERITY_ORDER = (Severity.CRITICAL, Severity.ALERT, Severity.WARNING, Severity.INFO)


@dataclass(frozen=True, slots=True)
class Filters:
    """The browse page's filters (all optional)."""

    since: datetime | None = None
    until: datetime | None = None
    site: str | None = None
    camera: str | None = None
    rule: str | None = None
    category: str | None = None
    species: str | None = None
    review: str | None = None
    kind: str | None = None

    def conditions(self, scope: Scope) -> list[sa.ColumnElement[bool]]:
        found = scope.where(Event.site)
        for column, value in (
            (Event.site, self.site),
            (Event.camera, self.camera),
            (Event.rule, self.rule),
            (Event.category, self.category),
            (Event.review_status, self.review),
            (Event.kind, self.kind),
        ):
            if value:
                found.append(column == value)
        if self.species:
            like = f"%{self.species}%"
            found.append(
                sa.or_(Event.species_chinese.like(like), Event.species_scientific.ilike(like))
            )
        if self.since is not None:
            found.append(Event.captured_at >= self.since)
        if self.until is not None:
            found.append(Event.captured_at < self.until)
        return found


@dataclass
class Queue:
    anomalies: list[Event] = field(default_factory=list)
    observations: list[Event] = field(default_factory=list)
    anomaly_total: int = 0
    observation_total: int = 0
    opened: set[str] = field(default_factory=set)


def review_queue(*, session: Session, scope: Scope, user_name: str) -> Queue:
    """Unreviewed anomalies by severity then newest first, then unreviewed observations; each
    severity is one range of the queue index, so the page costs the same at 100,000 events."""
    queue = Queue()
    base = [Event.review_status == REVIEW_UNREVIEWED, *scope.where(Event.site)]
    for severity in SEVERITY_ORDER:
        room = QUEUE_ANOMALIES - len(queue.anomalies)
        if room <= 0:
            break
        queue.anomalies.extend(
            session.scalars(
                sa.select(Event)
                .where(*base, Event.kind == EventKind.ANOMALY, Event.severity == severity)
                .order_by(Event.captured_at.desc(), Event.id.desc())
                .options(selectinload(Event.evidence))
                .limit(room)
            )
        )
    queue.observations = list(
        session.scalars(
            sa.select(Event)
            .where(*base, Event.kind == EventKind.OBSERVATION)
            .order_by(Event.captured_at.desc(), Event.id.desc())
            .options(selectinload(Event.evidence))
            .limit(QUEUE_OBSERVATIONS)
        )
    )
    counts: dict[str, int] = {
        kind: n
        for kind, n in session.execute(
            sa.select(Event.kind, sa.func.count()).where(*base).group_by(Event.kind)
        )
    }
    queue.anomaly_total = counts.get(EventKind.ANOMALY.value, 0)
    queue.observation_total = counts.get(EventKind.OBSERVATION.value, 0)
    ids = [e.event_id for e in (*queue.anomalies, *queue.observations)]
    queue.opened = opened_by(session=session, event_ids=ids, user_name=user_name)
    return queue


def opened_by(*, session: Session, event_ids: Sequence[str], user_name: str) -> set[str]:
    if not event_ids:
        return set()
    return set(
        session.scalars(
            sa.select(EventOpen.event_id).where(
                EventOpen.event_id.in_(event_ids), EventOpen.user_name == user_name
            )
        )
    )


def visible_ids(*, session: Session, scope: Scope, event_ids: Iterable[str]) -> set[str]:
    """Those of `event_ids` that exist within the scope (one query)."""
    wanted = list(event_ids)
    if not wanted:
        return set()
    return set(
        session.scalars(
            sa.select(Event.event_id).where(Event.event_id.in_(wanted), *scope.where(Event.site))
        )
    )


def browse(
    *, session: Session, scope: Scope, filters: Filters, limit: int, offset: int
) -> tuple[list[Event], int]:
    conditions = filters.conditions(scope)
    total = session.scalar(sa.select(sa.func.count()).select_from(Event).where(*conditions)) or 0
    rows = session.scalars(
        sa.select(Event)
        .where(*conditions)
        .order_by(Event.captured_at.desc(), Event.id.desc())
        .options(selectinload(Event.evidence))
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def iter_filtered(
    *, session_factory: sessionmaker[Session], scope: Scope, filters: Filters
) -> Iterator[Event]:
    """Every matching event, newest first, read in batches in a session of its own (an export
    streams after the request's session has closed)."""
    with session_factory() as session:
        yield from session.scalars(
            sa.select(Event)
            .where(*filters.conditions(scope))
            .order_by(Event.captured_at.desc(), Event.id.desc())
            .options(selectinload(Event.evidence))
            .execution_options(yield_per=500)
        )


def event_in_scope(*, session: Session, scope: Scope, event_id: str) -> Event | None:
    """The event when it exists and the account may see its site (else None: a 404 that does
    not tell another site's events apart from missing ones)."""
    row = session.scalar(
        sa.select(Event).where(Event.event_id == event_id).options(selectinload(Event.evidence))
    )
    if row is None or not scope.allows(row.site):
        return None
    return row


def record_open(*, session: Session, event_id: str, user_name: str, now: datetime) -> None:
    """Remember that this person opened the event (first time only)."""
    session.execute(
        upsert_insert(session, EventOpen)
        .values(event_id=event_id, user_name=user_name, opened_at=now)
        .on_conflict_do_nothing(index_elements=["event_id", "user_name"])
    )


def history(*, session: Session, event_id: str) -> tuple[list[EventReview], list[EventOpen]]:
    reviews = session.scalars(
        sa.select(EventReview)
        .where(EventReview.event_id == event_id)
        .order_by(EventReview.reviewed_at, EventReview.id)
    ).all()
    opens = session.scalars(
        sa.select(EventOpen).where(EventOpen.event_id == event_id).order_by(EventOpen.opened_at)
    ).all()
    return list(reviews), list(opens)


def similar_cases(*, session: Session, row: Event) -> list[Event]:
    """Earlier confirmed events of the same camera with the same rule or species."""
    same: list[sa.ColumnElement[bool]] = []
    if row.rule:
        same.append(Event.rule == row.rule)
    if row.species_scientific:
        same.append(Event.species_scientific == row.species_scientific)
    if not same:
        same.append(Event.category == row.category)
    return list(
        session.scalars(
            sa.select(Event)
            .where(
                Event.site == row.site,
                Event.camera == row.camera,
                Event.review_status == REVIEW_CONFIRMED,
                Event.event_id != row.event_id,
                Event.captured_at <= row.captured_at,
                sa.or_(*same),
            )
            .order_by(Event.captured_at.desc())
            .options(selectinload(Event.evidence))
            .limit(SIMILAR_CASES)
        )
    )


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of the 7-day timeline, as a share of its width."""

    left_pct: float
    width_pct: float
    title: str


@dataclass
class NodeStatus:
    node: Node
    online: bool
    heartbeat: dict[str, Any]
    outages: list[Span]


def node_status(
    *,
    session: Session,
    scope: Scope,
    now: datetime,
    offline_after_s: float,
    tz: ZoneInfo,
    days: int = 7,
) -> list[NodeStatus]:
    """Every node the account may see, offline ones first, with the outages of the last days."""
    start = now - timedelta(days=days)
    nodes = session.scalars(
        sa.select(Node).where(*scope.where(Node.site)).order_by(Node.site, Node.node)
    ).all()
    outages = session.scalars(
        sa.select(NodeOutage).where(
            *scope.where(NodeOutage.site),
            sa.or_(NodeOutage.ended_at.is_(None), NodeOutage.ended_at > start),
        )
    ).all()
    span_s = (now - start).total_seconds()
    found = []
    for node in nodes:
        silent = node.last_seen is None or (now - node.last_seen).total_seconds() > offline_after_s
        online = node.offline_event_id is None and not silent
        spans = []
        for o in outages:
            if (o.site, o.node) != (node.site, node.node):
                continue
            a = max(o.started_at, start)
            b = o.ended_at or now
            began = o.started_at.astimezone(tz)
            ended = o.ended_at.astimezone(tz) if o.ended_at else None
            spans.append(
                Span(
                    left_pct=round(100 * (a - start).total_seconds() / span_s, 2),
                    width_pct=max(0.4, round(100 * (b - a).total_seconds() / span_s, 2)),
                    title=f"{began:%m-%d %H:%M} – {ended:%m-%d %H:%M}"
                    if ended
                    else f"{began:%m-%d %H:%M} – 至今 now",
                )
            )
        found.append(NodeStatus(node, online, node.last_heartbeat or {}, spans))
    found.sort(key=lambda s: (s.online, s.node.site, s.node.node))
    return found


def signoffs(
    *, session: Session, scope: Scope, days: Sequence[date]
) -> dict[tuple[date, str], ReportSignoff]:
    rows = session.scalars(
        sa.select(ReportSignoff).where(
            ReportSignoff.report_date.in_(list(days)), *scope.where(ReportSignoff.site)
        )
    )
    return {(r.report_date, r.site): r for r in rows}


def sign_report(
    *,
    session: Session,
    day: date,
    site: str,
    signer: str,
    note: str,
    as_of: datetime,
    now: datetime,
    reporter: str = "",
    reporter_phone: str = "",
) -> bool:
    """Record the sign-off of the report as of `as_of`; False when the report was already
    signed (the first one stands)."""
    result = session.execute(
        upsert_insert(session, ReportSignoff)
        .values(
            report_date=day,
            site=site,
            signer=signer,
            signed_at=now,
            report_as_of=as_of,
            note=note,
            reporter=reporter,
            reporter_phone=reporter_phone,
        )
        .on_conflict_do_nothing(index_elements=["report_date", "site"])
    )
    return bool(getattr(result, "rowcount", 0))


TOP_SPECIES = 8


def daily_stats(
    *, session: Session, scope: Scope, now: datetime, days: int, timezone: str
) -> dict[str, Any]:
    """Counts per local day over the last `days`: events per species (the most seen) and per
    site, anomalies per rule, and unreviewed anomalies (the backlog) by day captured."""
    tz = ZoneInfo(timezone)
    start = now - timedelta(days=days)
    axis = [(now - timedelta(days=days - 1 - i)).astimezone(tz).date() for i in range(days)]
    index = {d: i for i, d in enumerate(axis)}
    rows = session.execute(
        sa.select(
            Event.captured_at,
            Event.site,
            Event.species_chinese,
            Event.kind,
            Event.rule,
            Event.review_status,
            Event.count,
        ).where(Event.captured_at >= start, *scope.where(Event.site))
    )
    species: dict[str, list[int]] = {}
    sites: dict[str, list[int]] = {}
    rules: dict[str, int] = {}
    backlog = [0] * days
    totals = {"events": 0, "anomalies": 0, "unreviewed": 0}
    for captured_at, site, name, kind, rule, review, count in rows:
        i = index.get(captured_at.astimezone(tz).date())
        if i is None:
            continue
        totals["events"] += 1
        sites.setdefault(site, [0] * days)[i] += 1
        if name:
            species.setdefault(name, [0] * days)[i] += count
        if kind == EventKind.ANOMALY:
            totals["anomalies"] += 1
            rules[rule or "-"] = rules.get(rule or "-", 0) + 1
            if review == REVIEW_UNREVIEWED:
                totals["unreviewed"] += 1
                backlog[i] += 1
    top = sorted(species, key=lambda k: -sum(species[k]))[:TOP_SPECIES]
    return {
        "days": [d.strftime("%m-%d") for d in axis],
        "species": {k: species[k] for k in top},
        "sites": sites,
        "rules": dict(sorted(rules.items(), key=lambda kv: -kv[1])),
        "backlog": backlog,
        "totals": totals,
    }


def open_case(*, session: Session, row: Event, opened_by: str, now: datetime) -> None:
    """A case for the report from a confirmed event (once per event)."""
    session.execute(
        upsert_insert(session, Case)
        .values(
            site=row.site,
            event_id=row.event_id,
            opened_by=opened_by,
            opened_at=now,
            found_at=row.captured_at,
            species_scientific=row.species_scientific,
            species_chinese=row.species_chinese,
            location=row.camera,
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
    )


def cases_for(*, session: Session, event_ids: Iterable[str]) -> dict[str, Case]:
    wanted = list(event_ids)
    if not wanted:
        return {}
    found = session.scalars(sa.select(Case).where(Case.event_id.in_(wanted)))
    return {c.event_id: c for c in found if c.event_id is not None}


def express_for(*, session: Session, event_id: str) -> ExpressReport | None:
    return session.scalar(sa.select(ExpressReport).where(ExpressReport.event_id == event_id))


@dataclass(frozen=True, slots=True)
class SiteDelivery:
    """A site's daily report of one day on its way to the bureau (the 报送 page's row)."""

    site: str
    signoff: ReportSignoff | None
    deliveries: list[ReportDelivery]
    attempts: dict[int, list[DeliveryAttempt]]
    express: list[ReportDelivery] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return bool(self.deliveries) and all(d.state == "delivered" for d in self.deliveries)


def queued(*, session: Session, day: date, site: str) -> bool:
    """The site's daily report of `day` has been frozen and queued for the bureau."""
    return (
        session.scalar(
            sa.select(ReportDelivery.id)
            .where(
                ReportDelivery.report_date == day,
                ReportDelivery.site == site,
                ReportDelivery.kind == "daily",
            )
            .limit(1)
        )
        is not None
    )


def deliveries(
    *, session: Session, scope: Scope, sites: Sequence[str], day: date
) -> list[SiteDelivery]:
    """Every site in scope with its sign-off, deliveries and their tries for `day`."""
    mine = [s for s in sites if scope.allows(s)]
    rows = session.scalars(
        sa.select(ReportDelivery)
        .where(ReportDelivery.report_date == day, ReportDelivery.site.in_(mine))
        .order_by(ReportDelivery.site, ReportDelivery.channel)
    ).all()
    tries: dict[int, list[DeliveryAttempt]] = {}
    if rows:
        for attempt in session.scalars(
            sa.select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_([r.id for r in rows]))
            .order_by(DeliveryAttempt.id)
        ):
            tries.setdefault(attempt.delivery_id, []).append(attempt)
    signed = signoffs(session=session, scope=scope, days=[day])
    return [
        SiteDelivery(
            site=site,
            signoff=signed.get((day, site)),
            deliveries=[r for r in rows if r.site == site and r.kind == "daily"],
            attempts=tries,
            express=[r for r in rows if r.site == site and r.kind == "express"],
        )
        for site in mine
    ]
