"""Central surveillance: mortality clusters across all nodes of a site (the cross-node view)."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from broker.payloads import Category, EventKind, EventPayload, utc_now
from central import crud
from central.db.models import REVIEW_DISMISSED, Event
from edge.rules.mortality import (
    Death,
    cluster_species,
    cluster_text,
    death_of,
    find_clusters,
    keys_of_source,
)
from edge.rules.settings import MortalityClusterSettings
from models.species import Catalogue, load_catalogue

log = logging.getLogger(__name__)

# Events central makes itself are stored under this reserved node id with their own sequence,
# so no node's sequence numbers (and the gap detection on them) are disturbed.
CENTRAL_NODE = "central"
CENTRAL_MODEL = "central"
MOTIONLESS = "motionless_bird"
CLUSTER = "mortality_cluster"

_catalogue: Catalogue | None = None


def _default_catalogue() -> Catalogue:
    global _catalogue
    if _catalogue is None:
        _catalogue = load_catalogue()
    return _catalogue


def site_deaths(
    session: Session, *, site: str, start: datetime, now: datetime, catalogue: Catalogue
) -> list[Death]:
    """Stored motionless_bird anomalies of a site found in (start, now], not dismissed."""
    rows = session.scalars(
        sa.select(Event).where(
            Event.site == site,
            Event.rule == MOTIONLESS,
            Event.kind == EventKind.ANOMALY.value,
            Event.review_status != REVIEW_DISMISSED,
            Event.captured_at <= now,
            Event.captured_at > start - (now - start),  # a still bird's window started earlier
        )
    ).all()
    deaths = []
    for r in rows:
        t = r.captured_until or r.captured_at
        if start < t <= now:
            deaths.append(
                death_of(
                    t=t,
                    camera=r.camera,
                    node=r.node,
                    scientific_name=r.species_scientific,
                    chinese_name=r.species_chinese or "",
                    catalogue=catalogue,
                    source=r.source,
                    ref=r.event_id,
                )
            )
    return deaths


def raised_clusters(session: Session, *, site: str, start: datetime) -> dict[str, datetime]:
    """Groupings already used up by cluster events of the site (from any node or central)."""
    rows = session.scalars(
        sa.select(Event).where(
            Event.site == site,
            Event.rule == CLUSTER,
            sa.func.coalesce(Event.captured_until, Event.captured_at) > start,
        )
    ).all()
    raised: dict[str, datetime] = {}
    for r in rows:
        last = r.captured_until or r.captured_at
        for k in keys_of_source(r.source):
            raised[k] = max(raised.get(k, last), last)
    return raised


def _next_seq(session: Session, site: str) -> int:
    top = session.scalar(
        sa.select(sa.func.max(Event.seq)).where(Event.site == site, Event.node == CENTRAL_NODE)
    )
    return int(top or 0) + 1


def evaluate_site(
    session: Session,
    *,
    site: str,
    now: datetime,
    config: MortalityClusterSettings,
    catalogue: Catalogue | None = None,
) -> list[EventPayload]:
    """New cross-node mortality clusters of a site at `now` (a capture time), stored and returned.

    Call after storing a motionless_bird event, with its capture time as `now`, in the same
    transaction. Idempotent: each death counts once per grouping, so a cluster is never raised
    twice; clusters from fewer than `config.central_min_nodes` nodes are left to the edge.
    """
    if not config.enabled:
        return []
    catalogue = catalogue or _default_catalogue()
    start = now - timedelta(hours=config.window_h)
    deaths = site_deaths(session, site=site, start=start, now=now, catalogue=catalogue)
    raised = raised_clusters(session, site=site, start=start)
    out: list[EventPayload] = []
    for c in find_clusters(deaths, now=now, settings=config, raised=raised):
        nodes = sorted({d.node for d in c.deaths})
        if len(nodes) < config.central_min_nodes:
            continue
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
        log.warning("site %s: mortality cluster %s across nodes %s", site, c.key, nodes)
        out.append(payload)
    return out
