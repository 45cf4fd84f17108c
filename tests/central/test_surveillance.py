"""Central mortality clusters across the nodes of a site (evaluate_site)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from central import crud
from central.db.models import Event
from central.surveillance import CENTRAL_NODE, evaluate_site
from edge.rules.settings import MortalityClusterSettings
from tests.central.conftest import make_event

T0 = datetime(2026, 11, 21, 6, tzinfo=UTC)
EGRET = {"scientific_name": "Egretta garzetta", "chinese_name": "白鹭", "confidence": 0.9}


def _dead(session: Session, node: str, minutes: int, seq: int, **fields: object) -> None:
    t = T0 + timedelta(minutes=minutes)
    data: dict[str, object] = {
        "kind": "anomaly",
        "rule": "motionless_bird",
        "severity": "alert",
        "node": node,
        "seq": seq,
        "captured_at": t - timedelta(minutes=12),
        "captured_until": t,
        "species": EGRET,
        "source": f"{node}_{minutes}.jpg",
    }
    data.update(fields)
    crud.insert_event(session=session, payload=make_event(**data), received_at=t)


def test_cluster_across_nodes_raised_once(session_factory: sessionmaker[Session]) -> None:
    cfg = MortalityClusterSettings()
    with session_factory.begin() as session:
        _dead(session, "cx-01", 0, 1)
        _dead(session, "cx-01", 30, 2)
        assert (
            evaluate_site(session, site="changxing", now=T0 + timedelta(minutes=30), config=cfg)
            == []
        )
        _dead(session, "cx-02", 60, 1)
        (ev,) = evaluate_site(session, site="changxing", now=T0 + timedelta(minutes=60), config=cfg)
    assert (ev.node, ev.rule, ev.severity.value, ev.count) == (
        CENTRAL_NODE,
        "mortality_cluster",
        "critical",
        3,
    )
    assert ev.species is not None and ev.species.chinese_name == "白鹭"
    assert ev.captured_until == T0 + timedelta(minutes=60) and ev.camera == "cam1"
    assert "3只白鹭疑似死亡" in ev.message_zh and "cx-01、cx-02" in ev.message_zh
    with session_factory.begin() as session:
        stored = session.scalars(sa.select(Event).where(Event.node == CENTRAL_NODE)).all()
        assert [e.event_id for e in stored] == [str(ev.event_id)]
        # again, and with a 4th death: the same cluster is not raised twice
        assert (
            evaluate_site(session, site="changxing", now=T0 + timedelta(minutes=61), config=cfg)
            == []
        )
        _dead(session, "cx-02", 90, 2)
        assert (
            evaluate_site(session, site="changxing", now=T0 + timedelta(minutes=90), config=cfg)
            == []
        )


def test_single_node_dismissed_and_old_deaths_are_left_out(
    session_factory: sessionmaker[Session],
) -> None:
    cfg = MortalityClusterSettings()
    with session_factory.begin() as session:
        for i in range(3):  # one node: the edge raises that cluster itself
            _dead(session, "cx-01", i, i + 1)
        assert (
            evaluate_site(session, site="changxing", now=T0 + timedelta(minutes=5), config=cfg)
            == []
        )
        _dead(session, "cx-02", 10, 1)
        session.execute(
            sa.update(Event).where(Event.node == "cx-02").values(review_status="dismissed")
        )
        _dead(session, "cx-03", -60 * 30, 1)  # 30 h earlier: outside the window
        assert (
            evaluate_site(session, site="changxing", now=T0 + timedelta(minutes=10), config=cfg)
            == []
        )
        _dead(session, "xz-01", 10, 1, site="xiazhuhu")  # another site
        assert (
            evaluate_site(session, site="changxing", now=T0 + timedelta(minutes=10), config=cfg)
            == []
        )
        _dead(session, "cx-04", 11, 1)
        (ev,) = evaluate_site(session, site="changxing", now=T0 + timedelta(minutes=11), config=cfg)
        assert ev.count == 4 and ev.seq == 1


def test_ingest_raises_the_cross_node_cluster_and_pages_once(
    start_ingestor: object,
    publisher: object,
    session_factory: sessionmaker[Session],
    central_config: object,
) -> None:
    """Three suspected deaths seen by two nodes arrive through mosquitto: central raises one
    critical mortality_cluster and the duty officer gets an SMS for it."""
    import json
    from collections.abc import Callable

    from broker.topics import event_topic
    from broker.validate import encode
    from central.config import CentralConfig
    from tests.helpers import wait_for

    assert isinstance(central_config, CentralConfig)
    ingest = start_ingestor(clusters=MortalityClusterSettings())  # type: ignore[operator]
    publish: Callable[[str, bytes], None] = publisher  # type: ignore[assignment]
    for node, minutes, seq in [("cx-01", 0, 1), ("cx-01", 30, 2), ("cx-02", 60, 1)]:
        t = T0 + timedelta(minutes=minutes)
        ev = make_event(
            kind="anomaly",
            rule="motionless_bird",
            severity="warning",
            node=node,
            seq=seq,
            captured_at=t - timedelta(minutes=12),
            captured_until=t,
            species=EGRET,
        )
        publish(event_topic("changxing", node), encode(ev))

    def clusters() -> list[Event]:
        with session_factory() as session:
            return list(
                session.scalars(sa.select(Event).where(Event.rule == "mortality_cluster")).all()
            )

    assert wait_for(lambda: len(clusters()) == 1, 20)
    (cluster,) = clusters()
    assert (cluster.node, cluster.severity, cluster.count) == (CENTRAL_NODE, "critical", 3)
    assert wait_for(lambda: central_config.sms_file.exists(), 10)
    sms = [json.loads(x) for x in central_config.sms_file.read_text().splitlines()]
    assert len(sms) == 1 and "长兴扬子鳄国家级自然保护区" in sms[0]["text"]
    assert ingest.counters.dead_lettered == 0  # type: ignore[attr-defined]
