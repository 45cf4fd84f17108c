"""Central mortality clusters across the nodes of a site (evaluate_site)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import EventPayload
from broker.topics import event_topic
from broker.validate import encode
from central import crud
from central.config import CentralConfig
from central.db.models import ClusterMember, Event
from central.surveillance import CENTRAL_NODE, evaluate_site
from surveillance.settings import MortalityClusterSettings
from tests.central.conftest import T0, IngestorFactory, make_death, make_event, three_deaths
from tests.helpers import wait_for


def _dead(session: Session, node: str, minutes: int, seq: int, **fields: object) -> None:
    t = T0 + timedelta(minutes=minutes)
    death = make_death(
        node=node,
        at=t,
        seq=seq,
        **{"severity": "alert", "source": f"{node}_{minutes}.jpg", **fields},
    )
    crud.insert_event(session=session, payload=death, received_at=t)


def test_cluster_across_nodes_raised_once(session_factory: sessionmaker[Session]) -> None:
    cfg = MortalityClusterSettings()
    with session_factory.begin() as session:
        _dead(session, "cx-01", 0, 1)
        _dead(session, "cx-01", 30, 2)
        assert (
            evaluate_site(session, site="changxing", at=T0 + timedelta(minutes=30), config=cfg)
            == []
        )
        _dead(session, "cx-02", 60, 1)
        (ev,) = evaluate_site(session, site="changxing", at=T0 + timedelta(minutes=60), config=cfg)
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
            evaluate_site(session, site="changxing", at=T0 + timedelta(minutes=61), config=cfg)
            == []
        )
        _dead(session, "cx-02", 90, 2)
        assert (
            evaluate_site(session, site="changxing", at=T0 + timedelta(minutes=90), config=cfg)
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
            evaluate_site(session, site="changxing", at=T0 + timedelta(minutes=5), config=cfg) == []
        )
        _dead(session, "cx-02", 10, 1)
        session.execute(
            sa.update(Event).where(Event.node == "cx-02").values(review_status="dismissed")
        )
        _dead(session, "cx-03", -60 * 30, 1)  # 30 h earlier: outside the window
        assert (
            evaluate_site(session, site="changxing", at=T0 + timedelta(minutes=10), config=cfg)
            == []
        )
        _dead(session, "xz-01", 10, 1, site="xiazhuhu")  # another site
        assert (
            evaluate_site(session, site="changxing", at=T0 + timedelta(minutes=10), config=cfg)
            == []
        )
        _dead(session, "cx-04", 11, 1)
        (ev,) = evaluate_site(session, site="changxing", at=T0 + timedelta(minutes=11), config=cfg)
        assert ev.count == 4 and ev.seq == 1


def test_ingest_raises_the_cross_node_cluster_and_pages_once(
    start_ingestor: IngestorFactory,
    publisher: Callable[[str, bytes], None],
    session_factory: sessionmaker[Session],
    central_config: CentralConfig,
) -> None:
    """Three suspected deaths seen by two nodes arrive through mosquitto: central raises one
    critical mortality_cluster and the duty officer gets an SMS for it."""
    ingest = start_ingestor(clusters=MortalityClusterSettings())
    for death in three_deaths():
        publisher(event_topic(death.site, death.node), encode(death))

    def clusters() -> list[Event]:
        with session_factory() as session:
            return list(
                session.scalars(sa.select(Event).where(Event.rule == "mortality_cluster")).all()
            )

    assert wait_for(lambda: len(clusters()) == 1, 20)
    (cluster,) = clusters()
    assert (cluster.node, cluster.severity, cluster.count) == (CENTRAL_NODE, "critical", 3)
    # the file exists from the moment the line is being written: wait for the line itself
    assert wait_for(
        lambda: (
            central_config.sms_file.exists() and central_config.sms_file.read_text().endswith("\n")
        ),
        10,
    )
    sms = [json.loads(x) for x in central_config.sms_file.read_text().splitlines()]
    assert len(sms) == 1 and "长兴扬子鳄国家级自然保护区" in sms[0]["text"]
    assert ingest.counters.dead_lettered == 0


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _arrive(session: Session, node: str, minutes: int, seq: int) -> list[EventPayload]:
    """A death stored and evaluated as the ingest does it."""
    _dead(session, node, minutes, seq)
    return evaluate_site(
        session, site="changxing", at=_at(minutes), config=MortalityClusterSettings()
    )


def test_a_late_death_completes_the_cluster(session_factory: sessionmaker[Session]) -> None:
    """cx-02 was offline and sends its buffered death from +0 after cx-01's from +60 and +90:
    the window +0..+90 holds three deaths from two nodes."""
    with session_factory.begin() as session:
        assert _arrive(session, "cx-01", 60, 1) == []
        assert _arrive(session, "cx-01", 90, 2) == []
        (ev,) = _arrive(session, "cx-02", 0, 1)
    assert ev.count == 3 and (ev.captured_at, ev.captured_until) == (_at(0), _at(90))
    assert "cx-01、cx-02" in ev.message_zh
    with session_factory.begin() as session:
        # another late death inside the raised cluster's span is not a new cluster, nor is
        # evaluating the same time again
        assert _arrive(session, "cx-03", 30, 1) == []
        assert (
            evaluate_site(session, site="changxing", at=_at(0), config=MortalityClusterSettings())
            == []
        )
        members = session.scalars(
            sa.select(ClusterMember.death_event_id).where(
                ClusterMember.cluster_event_id == str(ev.event_id)
            )
        ).all()
    assert len(members) == 3


@pytest.mark.parametrize(
    "arrivals",
    [
        [("cx-01", 0, 1), ("cx-02", 12 * 60, 1), ("cx-01", 24 * 60, 2)],
        [("cx-01", 24 * 60, 2), ("cx-02", 12 * 60, 1), ("cx-01", 0, 1)],  # the first one late
    ],
)
def test_deaths_exactly_a_window_apart_make_one_cluster(
    session_factory: sessionmaker[Session], arrivals: list[tuple[str, int, int]]
) -> None:
    """The 24 h window holds both its ends, as on the edge (find_clusters): deaths at 0, 12 and
    24 h from two nodes are one cluster, whichever of them arrives last."""
    with session_factory.begin() as session:
        *first, last = arrivals
        for node, minutes, seq in first:
            assert _arrive(session, node, minutes, seq) == []
        (ev,) = _arrive(session, *last)
    assert ev.count == 3 and (ev.captured_at, ev.captured_until) == (_at(0), _at(24 * 60))
    assert "cx-01、cx-02" in ev.message_zh


def test_late_deaths_never_count_twice(session_factory: sessionmaker[Session]) -> None:
    """Deaths already in a cluster are left out; three new ones, even when they arrive late
    and fall between the counted ones, make the next cluster."""
    with session_factory.begin() as session:
        assert _arrive(session, "cx-01", 0, 1) == []
        assert _arrive(session, "cx-02", 20, 1) == []
        (first,) = _arrive(session, "cx-01", 40, 2)
        assert _arrive(session, "cx-03", 10, 1) == []
        assert _arrive(session, "cx-03", 30, 2) == []
        (second,) = _arrive(session, "cx-02", 5, 2)
        assert _arrive(session, "cx-01", 60 * 30, 3) == []  # 30 h later: a window of its own
    assert (first.count, second.count) == (3, 3)
    assert (second.captured_at, second.captured_until) == (_at(5), _at(30))
    assert "cx-02、cx-03" in second.message_zh
    with session_factory() as session:
        members = session.scalars(sa.select(ClusterMember.death_event_id)).all()
        clusters = session.scalars(sa.select(Event).where(Event.rule == "mortality_cluster"))
        assert [c.seq for c in clusters] == [1, 2]
    assert len(members) == len(set(members)) == 6


def test_a_cluster_a_node_raised_covers_its_own_deaths_only(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        for minutes, seq in ((0, 1), (10, 2), (20, 3)):
            _dead(session, "cx-01", minutes, seq)
        edge_cluster = make_event(  # what cx-01 raised itself for its three deaths
            kind="anomaly",
            rule="mortality_cluster",
            severity="critical",
            node="cx-01",
            seq=4,
            captured_at=_at(0),
            captured_until=_at(20),
            count=3,
            source="mortality_cluster:species:Egretta garzetta",
        )
        crud.insert_event(session=session, payload=edge_cluster, received_at=_at(20))
        assert _arrive(session, "cx-02", 5, 1) == []  # cx-01's deaths are counted already
        assert _arrive(session, "cx-02", 15, 2) == []
        (ev,) = _arrive(session, "cx-03", 25, 1)
    assert ev.count == 3 and "cx-02、cx-03" in ev.message_zh


def _waiting_for_an_advisory_lock(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.scalar(
                sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            )
        )


def test_two_workers_storing_deaths_at_once_raise_the_cluster(
    session_factory: sessionmaker[Session], engine: sa.Engine
) -> None:
    """One death is committed; two ingest workers each store one more at the same time. Under
    READ COMMITTED neither would see the other's: the site lock makes the second one wait for
    the first commit, so it sees all three."""
    if engine.dialect.name != "postgresql":
        pytest.skip(
            "SQLite admits one writer at a time: the second worker's insert already waits for "
            "the first one's commit and then reads it"
        )
    cfg = MortalityClusterSettings()
    with session_factory.begin() as session:
        _dead(session, "cx-01", 0, 1)
    a, b = session_factory(), session_factory()
    raised_b: list[EventPayload] = []

    def worker_b() -> None:
        raised_b.extend(evaluate_site(b, site="changxing", at=_at(11), config=cfg))
        b.commit()

    thread = threading.Thread(target=worker_b, daemon=True)
    try:
        _dead(a, "cx-01", 10, 2)
        _dead(b, "cx-02", 11, 1)
        raised_a = evaluate_site(a, site="changxing", at=_at(10), config=cfg)
        thread.start()
        assert wait_for(lambda: _waiting_for_an_advisory_lock(engine), 10), "B did not wait"
        a.commit()
        thread.join(30)
        assert not thread.is_alive()
    finally:
        a.close()
        b.close()
    assert (len(raised_a), len(raised_b)) == (0, 1)
    with session_factory() as session:
        (cluster,) = session.scalars(sa.select(Event).where(Event.rule == "mortality_cluster"))
    assert cluster.count == 3


COOT, MOORHEN, CORMORANT, SPARROW = (
    {"scientific_name": name, "chinese_name": zh, "confidence": 0.9}
    for name, zh in [
        ("Fulica atra", "白骨顶"),
        ("Gallinula chloropus", "黑水鸡"),
        ("Phalacrocorax carbo", "普通鸬鹚"),
        ("Passer montanus", "麻雀"),
    ]
)


@pytest.mark.parametrize(
    ("cfg", "grouping"),
    [
        (MortalityClusterSettings(any_bird=True), "any"),
        (MortalityClusterSettings(groups=["A", "O"]), "group:O"),
    ],
)
def test_a_node_cluster_of_a_configured_grouping_covers_its_deaths(
    session_factory: sessionmaker[Session], cfg: MortalityClusterSettings, grouping: str
) -> None:
    """Central counts birds of any species together, or the catch-all risk group O: cx-01's
    three dead birds of different species (group O) were reported by cx-01 itself in an
    'any' or 'group:O' cluster. They stay counted, so one more death at cx-02 is no cluster;
    three more from two other nodes are."""
    with session_factory.begin() as session:
        for minutes, seq, species in ((0, 1, COOT), (10, 2, MOORHEN), (20, 3, CORMORANT)):
            _dead(session, "cx-01", minutes, seq, species=species)
        edge_cluster = make_event(  # what cx-01 raised itself under the same settings
            kind="anomaly",
            rule="mortality_cluster",
            severity="critical",
            node="cx-01",
            seq=4,
            captured_at=_at(0),
            captured_until=_at(20),
            count=3,
            source=f"mortality_cluster:{grouping}",
        )
        crud.insert_event(session=session, payload=edge_cluster, received_at=_at(20))
        _dead(session, "cx-02", 30, 1, species=SPARROW)
        assert evaluate_site(session, site="changxing", at=_at(30), config=cfg) == []
        _dead(session, "cx-02", 40, 2, species=COOT)
        assert evaluate_site(session, site="changxing", at=_at(40), config=cfg) == []
        _dead(session, "cx-03", 50, 1, species=MOORHEN)
        (ev,) = evaluate_site(session, site="changxing", at=_at(50), config=cfg)
    assert ev.count == 3 and ev.source == f"mortality_cluster:{grouping}"
    assert "cx-02、cx-03" in ev.message_zh and "cx-01" not in ev.message_zh
