"""10,000 malformed or hostile messages: ingest keeps running and dead-letters every one."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from broker.client import BrokerAddress, MqttLink, PublishHandle
from broker.payloads import MAX_PAYLOAD_BYTES, MAX_TEXT
from broker.topics import PREFIX, event_topic, heartbeat_topic
from broker.validate import encode
from central.app import CentralService
from central.config import CentralConfig
from tests.central.conftest import unique
from tests.factories import make_event
from tests.faults.conftest import NODE, SITE, Db, wait_ingest_live
from tests.helpers import MosquittoServer, wait_for

HOSTILE = 10_000
TOPIC = event_topic(SITE, NODE)


def _good() -> dict[str, object]:
    data = json.loads(encode(make_event(site=SITE, node=NODE)))
    assert isinstance(data, dict)
    return data


def _with(**change: object) -> bytes:
    return json.dumps({**_good(), **change}).encode()


def _without(key: str) -> bytes:
    data = _good()
    del data[key]
    return json.dumps(data).encode()


# Each maker returns (topic, payload); they cycle over the 10,000 messages.
MAKERS: list[Callable[[int], tuple[str, bytes]]] = [
    lambda i: (TOPIC, b"{not json"),
    lambda i: (TOPIC, b"\xff" + os.urandom(64)),
    lambda i: (TOPIC, _with(seq="abc")),
    lambda i: (TOPIC, _with(confidence="high")),
    lambda i: (TOPIC, _with(schema_version=2)),
    lambda i: (TOPIC, _with(schema_version="1")),
    lambda i: (TOPIC, _with(message_zh="鸟" * (MAX_TEXT + 1))),
    lambda i: (TOPIC, _with(boxes=[{"x": 2}] * 300)),
    lambda i: (TOPIC, b"[" * 100_000),
    lambda i: (TOPIC, b'{"a":' * 20_000),
    lambda i: (TOPIC, b"1" * 5000),
    lambda i: (TOPIC, b"[1, 2, 3]"),
    lambda i: (TOPIC, b""),
    lambda i: (TOPIC, b"\x00" * 32),
    lambda i: (event_topic("xiazhuhu", "xz-node-01"), encode(make_event(site=SITE, node=NODE))),
    lambda i: (f"{PREFIX}/BAD SITE/{NODE}/event", encode(make_event())),
    lambda i: (TOPIC, _with(kind="anomaly")),  # an anomaly without its rule
    lambda i: (TOPIC, _with(extra="field")),
    lambda i: (TOPIC, _without("event_id")),
    lambda i: (TOPIC, _with(message_zh="\ud800")),  # a lone surrogate
    lambda i: (TOPIC, _with(captured_at="yesterday")),
    lambda i: (heartbeat_topic(SITE, NODE), b'{"schema_version": 1, "site": 7}'),
    # Over the size limit; rare so the run stays small (each is 300 kB on the wire).
    lambda i: (TOPIC, b" " * (MAX_PAYLOAD_BYTES + 1) if i % 50 == 0 else b"{}"),
]


def test_ten_thousand_hostile_messages_are_dead_lettered(
    tmp_path: Path, broker: MosquittoServer, central_config: CentralConfig, db: Db
) -> None:
    central = CentralService(central_config, serve_http=False)
    central.start()
    link = MqttLink(unique("attacker-"), BrokerAddress("127.0.0.1", broker.port))
    link.start()
    try:
        assert link.wait_connected(10)
        wait_ingest_live(broker.port, db)
        handles: list[PublishHandle] = []
        for i in range(HOSTILE):
            topic, payload = MAKERS[i % len(MAKERS)](i)
            handles.append(link.publish(topic, payload, qos=1))
        assert all(h.wait(30) for h in handles[-100:])
        assert wait_for(lambda: db.dead_letters() >= HOSTILE, 60), db.dead_letters()
        good = make_event(site=SITE, node=NODE, event_id=uuid.uuid4())
        assert link.publish(TOPIC, encode(good), qos=1).wait(10)
        assert wait_for(lambda: db.events() == 1, 20)
        assert wait_for(lambda: central.counters.dead_lettered == HOSTILE, 5)
    finally:
        link.stop()
        central.stop()
    assert db.dead_letters() == HOSTILE
    assert db.events() == 1
    assert central.counters.db_errors == 0
