"""Broker and central outages while a node keeps producing: every event arrives, exactly once."""

from __future__ import annotations

import threading
from pathlib import Path

from broker.payloads import EventPayload
from broker.topics import command_topic
from central.app import CentralService
from central.config import CentralConfig
from edge.outbox import Outbox
from edge.publish import CommandHandler, Publisher
from tests.factories import make_event
from tests.faults.conftest import NODE, SITE, Db, node_link, wait_ingest_live
from tests.faults.procs import produce
from tests.helpers import MosquittoServer, wait_for

# Enough to outlast each outage and, for central, more than mosquitto's default queue of 1000.
BROKER_OUTAGE_EVENTS = 1500
CENTRAL_OUTAGE_EVENTS = 3000


class Producer:
    """A node's pipeline stand-in: adds events to the outbox in small batches until stopped."""

    def __init__(self, outbox: Outbox, total: int, batch: int = 10, every_s: float = 0.005):
        self._outbox, self._total, self._batch, self._every_s = outbox, total, batch, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            produce(self._outbox, site=SITE, node=NODE, total=self._total, batch=self._batch)

    def start(self) -> Producer:
        """Start producing."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop producing."""
        self._stop.set()
        self._thread.join(5)


def test_broker_restart_loses_nothing(
    tmp_path: Path, broker: MosquittoServer, central_config: CentralConfig, db: Db
) -> None:
    # Central asks for any gap it sees (the node keeps acknowledged events for a while), so even
    # a broker that lost its persistence file would not lose events for good.
    monitor = central_config.monitor.model_copy(update={"gap_grace_s": 0.5})
    central = CentralService(
        central_config.model_copy(update={"monitor": monitor}), serve_http=False
    )
    central.start()
    outbox = Outbox(tmp_path / "outbox.db", retain_acked_s=600)
    link = node_link(broker.port)
    publisher = Publisher(outbox, link)
    link.subscribe(
        command_topic(SITE, NODE), CommandHandler(outbox=outbox, publisher=publisher).handle
    )
    producer = Producer(outbox, BROKER_OUTAGE_EVENTS)
    try:
        wait_ingest_live(broker.port, db)
        publisher.start()
        producer.start()
        assert wait_for(lambda: db.events() >= BROKER_OUTAGE_EVENTS // 4, 30)
        before = db.events()
        broker.stop()
        assert wait_for(lambda: not link.connected, 10)
        at_stop = outbox.last_seq()
        # The node keeps making events while the broker is away; they wait in its outbox.
        assert wait_for(lambda: outbox.last_seq() >= at_stop + 200, 20)
        assert outbox.depth() >= 200
        broker.start()
        assert wait_for(lambda: db.events() == BROKER_OUTAGE_EVENTS, 60), db.events()
        assert wait_for(publisher.drained, 10)
    finally:
        producer.stop()
        publisher.stop()
        link.stop()
        central.stop()
    assert db.distinct_events() == BROKER_OUTAGE_EVENTS
    arrived = db.seqs_in_arrival_order()
    assert sorted(arrived) == list(range(1, BROKER_OUTAGE_EVENTS + 1))
    assert arrived[:before] == list(range(1, before + 1))  # in order up to the outage
    assert db.dead_letters() == 0
    assert db.node().contiguous_seq == BROKER_OUTAGE_EVENTS


def test_central_down_gets_its_backlog_from_the_persistent_session(
    tmp_path: Path, broker: MosquittoServer, central_config: CentralConfig, db: Db
) -> None:
    first = CentralService(central_config, serve_http=False)
    first.start()
    wait_ingest_live(broker.port, db)
    first.stop()  # central is down from here on; its session keeps queueing at the broker
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.add([_event() for _ in range(CENTRAL_OUTAGE_EVENTS)])
    link = node_link(broker.port)
    publisher = Publisher(outbox, link)
    publisher.start()
    try:
        assert wait_for(publisher.drained, 60)  # the broker acknowledged all of them
        assert db.events() == 0
        second = CentralService(central_config, serve_http=False)  # same client id
        second.start()
        try:
            assert wait_for(lambda: db.events() == CENTRAL_OUTAGE_EVENTS, 60), db.events()
            assert wait_for(lambda: second.counters.stored == CENTRAL_OUTAGE_EVENTS, 5)
        finally:
            second.stop()
    finally:
        publisher.stop()
        link.stop()
    assert db.distinct_events() == CENTRAL_OUTAGE_EVENTS
    assert db.seqs_in_arrival_order() == list(range(1, CENTRAL_OUTAGE_EVENTS + 1))


def _event() -> EventPayload:
    return make_event(site=SITE, node=NODE)
