"""SIGKILL of the edge or of central in the middle of the flow: nothing lost, nothing doubled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from central.app import CentralService
from central.config import CentralConfig
from edge.outbox import Outbox
from edge.publish import Publisher
from tests.faults.conftest import (
    Db,
    Proc,
    central_settings,
    node_link,
    wait_ingest_live,
    write_config,
)
from tests.faults.test_outages import Producer
from tests.helpers import MosquittoServer, wait_for

EDGE_KILL_EVENTS = 2000
CENTRAL_KILL_EVENTS = 3000


def test_edge_killed_while_publishing(
    tmp_path: Path,
    broker: MosquittoServer,
    central_config: CentralConfig,
    db: Db,
    procs: Callable[..., Proc],
) -> None:
    central = CentralService(central_config, serve_http=False)
    central.start()
    try:
        wait_ingest_live(broker.port, db)
        edge = procs(
            "edge",
            f"--outbox={tmp_path / 'outbox.db'}",
            f"--port={broker.port}",
            f"--total={EDGE_KILL_EVENTS}",
            "--batch=10",
            "--every-s=0.01",
        )
        edge.start()
        assert wait_for(lambda: db.events() >= EDGE_KILL_EVENTS // 5, 30)
        edge.kill()
        at_kill = db.events()
        assert at_kill < EDGE_KILL_EVENTS  # it died with work left
        edge.start()  # same outbox, same client id
        assert wait_for(lambda: db.events() >= EDGE_KILL_EVENTS, 60), db.events()
        assert wait_for(lambda: _outbox_empty(tmp_path / "outbox.db"), 20)
    finally:
        central.stop()
    assert db.events() == EDGE_KILL_EVENTS
    assert db.distinct_events() == EDGE_KILL_EVENTS
    assert sorted(db.seqs_in_arrival_order()) == list(range(1, EDGE_KILL_EVENTS + 1))
    assert db.node().contiguous_seq == EDGE_KILL_EVENTS


def test_central_killed_while_ingesting(
    tmp_path: Path,
    broker: MosquittoServer,
    database_url: str,
    db: Db,
    procs: Callable[..., Proc],
) -> None:
    config = write_config(tmp_path, central_settings(tmp_path, database_url, broker.port))
    central = procs("central", f"--config={config}")
    central.start()
    wait_ingest_live(broker.port, db)
    outbox = Outbox(tmp_path / "outbox.db")
    link = node_link(broker.port)
    publisher = Publisher(outbox, link)
    publisher.start()
    producer = Producer(outbox, CENTRAL_KILL_EVENTS, batch=20, every_s=0.01).start()
    try:
        assert wait_for(lambda: db.events() >= CENTRAL_KILL_EVENTS // 5, 30)
        central.kill()
        at_kill = db.events()
        assert at_kill < CENTRAL_KILL_EVENTS
        central.start()  # same client id: the broker kept its session and the unacked messages
        assert wait_for(lambda: db.events() >= CENTRAL_KILL_EVENTS, 60), db.events()
        assert wait_for(publisher.drained, 20)
    finally:
        producer.stop()
        publisher.stop()
        link.stop()
    assert db.events() == CENTRAL_KILL_EVENTS
    assert db.distinct_events() == CENTRAL_KILL_EVENTS
    assert sorted(db.seqs_in_arrival_order()) == list(range(1, CENTRAL_KILL_EVENTS + 1))
    assert db.dead_letters() == 0
    assert db.node().contiguous_seq == CENTRAL_KILL_EVENTS


def _outbox_empty(path: Path) -> bool:
    box = Outbox(path)
    try:
        return box.depth() == 0 and box.last_seq() == EDGE_KILL_EVENTS
    finally:
        box.close()
