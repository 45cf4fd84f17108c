"""Central surveillance: mortality clusters across all nodes of a site (the cross-node view).

Deaths reach central late and out of order (a node that was offline sends its buffered events
when it is back), so a new death is checked in every 24 h window that contains it, not only in
the one that ends with it. Each death counts in at most one cluster: the members of every
cluster central raises are recorded (cluster_members, unique per death).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from bisect import bisect_right
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from broker.payloads import Category, EventKind, EventPayload, RuleName, utc_now
from central import crud
from central.db.models import REVIEW_DISMISSED, ClusterMember, Event
from models.species import Catalogue, load_catalogue
from surveillance.clusters import (
    Cluster,
    Death,
    cluster_species,
    cluster_text,
    death_keys,
    death_of,
    find_clusters,
    keys_of_source,
)
from surveillance.settings import MortalityClusterSettings

log = logging.getLogger(__name__)

# Events central makes itself are stored under this reserved node id with their own sequence,
# so no node's sequence numbers (and the gap detection on them) are disturbed.
CENTRAL_NODE = "central"
CENTRAL_MODEL = "central"
MOTIONLESS = RuleName.MOTIONLESS_BIRD
CLUSTER = RuleName.MORTALITY_CLUSTER

_catalogue: Catalogue | None = None


def _default_catalogue() -> Catalogue:
    global _catalogue
    if _catalogue is None:
        _catalogue = load_catalogue()
    return _catalogue


def site_deaths(
    session: Session,
    *,
    site: str,
    after: datetime,
    before: datetime,
    window: timedelta,
    catalogue: Catalogue,
) -> list[Death]:
    """Stored motionless_bird anomalies of a site that died in [after, before], not dismissed.

    Both ends count, as on the edge (surveillance.clusters.find_clusters): deaths exactly
    window_h apart are in one window. A death's time is the end of its capture window (when
    the bird was last seen still). That capture window is taken to last at most one cluster
    `window` (a node reports a bird once it has been still for still_min, 10 minutes by
    default), which bounds the index range searched."""
    died = sa.func.coalesce(Event.captured_until, Event.captured_at)
    rows = session.scalars(
        sa.select(Event)
        .where(
            Event.site == site,
            Event.rule == MOTIONLESS,
            Event.kind == EventKind.ANOMALY.value,
            Event.review_status != REVIEW_DISMISSED,
            # the index (site, captured_at); captured_at <= the death time <= captured_at + window
            Event.captured_at >= after - window,
            Event.captured_at <= before,
            died >= after,
            died <= before,
        )
        .order_by(died, Event.id)
    ).all()
    return [
        death_of(
            t=r.captured_until or r.captured_at,
            camera=r.camera,
            node=r.node,
            scientific_name=r.species_scientific,
            chinese_name=r.species_chinese or "",
            catalogue=catalogue,
            source=r.source,
            ref=r.event_id,
        )
        for r in rows
    ]


def counted_deaths(
    session: Session, *, site: str, deaths: Iterable[Death], config: MortalityClusterSettings
) -> set[str]:
    """Refs of the deaths already counted in a cluster of the site.

    Central's clusters list their members. A cluster raised by a node (or by central before
    members were recorded) covers the deaths of its groupings (under `config`: its risk
    groups, any_bird) in its time span, of that node only when a node raised it. A cluster
    spans at most one window of deaths (a node's window_h taken to be central's), which bounds
    the index range searched.
    """
    deaths = list(deaths)
    if not deaths:
        return set()
    refs = [d.ref for d in deaths]
    counted = set(
        session.scalars(
            sa.select(ClusterMember.death_event_id).where(ClusterMember.death_event_id.in_(refs))
        )
    )
    first, last = min(d.t for d in deaths), max(d.t for d in deaths)
    window = timedelta(hours=config.window_h)
    clusters = session.scalars(
        sa.select(Event).where(
            Event.site == site,
            Event.rule == CLUSTER,
            Event.captured_at >= first - window,
            Event.captured_at <= last,
            sa.func.coalesce(Event.captured_until, Event.captured_at) >= first,
            ~sa.exists().where(ClusterMember.cluster_event_id == Event.event_id),
        )
    ).all()
    for c in clusters:
        keys = set(keys_of_source(c.source))
        end = c.captured_until or c.captured_at
        for d in deaths:
            if (
                c.captured_at <= d.t <= end
                and (c.node == CENTRAL_NODE or c.node == d.node)
                and keys.intersection(death_keys(d, config))
            ):
                counted.add(d.ref)
    return counted


def _next_seq(session: Session, site: str) -> int:
    top = session.scalar(
        sa.select(sa.func.max(Event.seq)).where(Event.site == site, Event.node == CENTRAL_NODE)
    )
    return int(top or 0) + 1


def site_lock_key(site: str) -> int:
    """A stable signed 64-bit key of a site for PostgreSQL advisory locks (same in every
    process, unlike hash())."""
    digest = hashlib.blake2b(f"wildwatch/site/{site}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_sites(session: Session, sites: Iterable[str]) -> None:
    """On PostgreSQL, hold each site's cluster lock until the transaction ends.

    Two ingest workers that each store one death of a site would otherwise each count the
    committed deaths plus their own and neither see the third. Locks are taken in sorted order
    so two workers with several sites cannot deadlock; taking one twice is harmless. SQLite
    needs none: it lets one writer at a time in, and the second one's reads start after the
    first committed.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    for site in sorted(set(sites)):
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(site_lock_key(site))))


def evaluate_site(
    session: Session,
    *,
    site: str,
    at: datetime | Collection[datetime],
    config: MortalityClusterSettings,
    catalogue: Catalogue | None = None,
) -> list[EventPayload]:
    """New cross-node mortality clusters of a site around new deaths, stored and returned.

    Call after storing motionless_bird events, in the same transaction, with their death times
    (captured_until, else captured_at) as `at`: one, or those of every death a batch stored at
    the site, so the site is read once. Every window of `config.window_h` hours that contains
    one of them is checked, earliest first, so a death that arrives after later ones still
    completes their cluster. Idempotent: a death counts in one cluster only, so a cluster is
    never raised twice; clusters from fewer than `config.central_min_nodes` nodes are left to
    the edge.
    """
    times = sorted({at} if isinstance(at, datetime) else set(at))
    if not config.enabled or not times:
        return []
    lock_sites(session, [site])
    catalogue = catalogue or _default_catalogue()
    window = timedelta(hours=config.window_h)
    deaths = site_deaths(
        session,
        site=site,
        after=times[0] - window,
        before=times[-1] + window,
        window=window,
        catalogue=catalogue,
    )
    counted = counted_deaths(session, site=site, deaths=deaths, config=config)
    free = [d for d in deaths if d.ref not in counted]
    out: list[EventPayload] = []
    for end in sorted({d.t for d in free if _ends_a_window_of(d.t, times, window)}):
        # One cluster at a time: two groupings (a species and its risk group) may share deaths.
        while (c := _cross_node(free, end, config)) is not None:
            out.append(_raise(session, site, c, config))
            members = {d.ref for d in c.deaths}
            free = [d for d in free if d.ref not in members]
    return out


def _ends_a_window_of(end: datetime, times: list[datetime], window: timedelta) -> bool:
    """Whether the window ending at `end` holds one of the sorted new death `times`."""
    i = bisect_right(times, end)
    return i > 0 and end - times[i - 1] <= window


def _nodes(c: Cluster) -> list[str]:
    return sorted({d.node for d in c.deaths})


def _cross_node(
    deaths: list[Death], end: datetime, config: MortalityClusterSettings
) -> Cluster | None:
    """The first cluster in the window ending at `end` seen by enough nodes, if any."""
    for c in find_clusters(deaths, now=end, settings=config, raised={}):
        if len(_nodes(c)) >= config.central_min_nodes:
            return c
    return None


def _raise(
    session: Session, site: str, c: Cluster, config: MortalityClusterSettings
) -> EventPayload:
    nodes = _nodes(c)
    zh, en = cluster_text(c, config)
    latest = c.deaths[-1]
    payload = EventPayload(
        event_id=uuid.uuid4(),
        seq=_next_seq(session, site),
        site=site,
        node=CENTRAL_NODE,
        camera=latest.camera,
        kind=EventKind.ANOMALY,
        category=Category.BIRD,
        captured_at=c.deaths[0].t,
        captured_until=latest.t,
        created_at=utc_now(),
        rule=CLUSTER,
        severity=config.severity,
        count=len(c.deaths),
        confidence=1.0,
        species=cluster_species(c),
        message_zh=f"{zh}（节点：{'、'.join(nodes)}）",
        message_en=f"{en} (nodes: {', '.join(nodes)})",
        source=c.source,
        model=CENTRAL_MODEL,
    )
    crud.insert_event(session=session, payload=payload, received_at=utc_now())
    session.add_all(
        ClusterMember(cluster_event_id=str(payload.event_id), death_event_id=d.ref)
        for d in c.deaths
    )
    session.flush()  # the next evaluation in this transaction must see these members
    log.warning("site %s: mortality cluster %s across nodes %s", site, c.key, nodes)
    return payload
