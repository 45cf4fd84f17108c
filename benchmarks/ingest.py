"""Sustained ingest from a real mosquitto into SQLite and PostgreSQL, one and two workers.

Prints events/s, median and p99 publish→committed latency, and checks that nothing was lost.
Usage: python -m benchmarks.ingest [--events N] [--pg URL]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from broker.client import BrokerAddress, MqttLink
from broker.topics import event_topic
from broker.validate import encode
from central.app import CentralService
from central.config import CentralConfig
from central.db.models import Event
from tests.factories import make_event
from tests.faults.conftest import Db, wait_ingest_live
from tests.helpers import MosquittoServer, free_port

NODES = 4  # publishing nodes, one connection each
POLL_S = 0.02  # commit time is when the poller first sees a row (±POLL_S)


PLACEHOLDER = "2000-01-01T00:00:00.123456Z"  # created_at, overwritten with the publish time


def _publish(port: int, node: str, count: int) -> None:
    """A node in its own process (no GIL shared with central): payloads are encoded before the
    clock starts; only the created_at text is stamped at publish time."""
    link = MqttLink(f"bench-{node}-{uuid.uuid4().hex[:6]}", BrokerAddress("127.0.0.1", port))
    link.start()
    link.wait_connected(10)
    placeholder = datetime.fromisoformat(PLACEHOLDER)
    topic = event_topic("changxing", node)
    payloads = [
        encode(make_event(site="changxing", node=node, seq=seq, created_at=placeholder))
        for seq in range(1, count + 1)
    ]
    marker = PLACEHOLDER.encode()
    handles = []
    for raw in payloads:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
        handles.append(link.publish(topic, raw.replace(marker, stamp, 1)))
    for h in handles[-100:]:
        h.wait(120)
    link.stop()


def run(port: int, url: str, workers: int, events: int, tmp: Path) -> dict[str, float]:
    """One measurement: start central, publish from NODES nodes, poll commits."""
    cfg = CentralConfig.model_validate(
        {
            "data_dir": str(tmp / uuid.uuid4().hex[:6]),
            "database_url": url,
            "mqtt": {
                "port": port,
                "client_id": f"bench-{uuid.uuid4().hex[:8]}",
                "share_group": f"g{uuid.uuid4().hex[:8]}",
                "workers": workers,
            },
        }
    )
    central = CentralService(cfg, serve_http=False)
    central.start()
    db = Db(url)
    wait_ingest_live(port, db)
    latencies: list[float] = []
    seen, last_id = 0, 0
    first: float | None = None  # the rate counts from the first commit to the last
    per_node = events // NODES
    total = per_node * NODES
    start = time.time()
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_publish, args=(port, f"bench-{n}", per_node)) for n in range(NODES)
    ]
    for p in procs:
        p.start()
    deadline = time.time() + 300
    with db.engine.connect() as conn:
        while seen < total and time.time() < deadline:
            rows = conn.execute(
                sa.select(Event.id, Event.created_at).where(Event.id > last_id).order_by(Event.id)
            ).all()
            conn.rollback()
            now = datetime.now(UTC)
            if rows and first is None:
                first = time.time()
            for row_id, created in rows:
                latencies.append((now - created).total_seconds())
                last_id = row_id
            seen += len(rows)
            if not rows:
                time.sleep(POLL_S)
    elapsed = time.time() - (first or start)
    for p in procs:
        p.join(60)
    stored, distinct = db.events(), db.distinct_events()
    central.stop()
    db.engine.dispose()
    latencies.sort()
    return {
        "events": total,
        "stored": stored,
        "lost": total - distinct,
        "rate": total / elapsed,
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
    }


def _pg_database(base: str) -> str:
    name = f"ww_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(base).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    """Run every combination and print a table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ww-bench-"))
    (tmp / "mosquitto").mkdir()
    # As broker/mosquitto.py configures it: more in flight to central than the default 20.
    broker = MosquittoServer(tmp / "mosquitto", free_port(), "max_inflight_messages 1000\n")
    broker.start()
    head = ("database", "workers", "events", "lost", "ev/s", "p50 ms", "p99 ms")
    print("{:<11}{:>8}{:>8}{:>6}{:>9}{:>9}{:>9}".format(*head))
    try:
        for name in ("sqlite", "postgresql"):
            for workers in (1, 2):
                url = (
                    f"sqlite:///{tmp / uuid.uuid4().hex[:6]}.db"
                    if name == "sqlite"
                    else _pg_database(args.pg)
                )
                r = run(broker.port, url, workers, args.events, tmp)
                print(
                    f"{name:<11}{workers:>8}{r['events']:>8.0f}{r['lost']:>6.0f}{r['rate']:>9.0f}"
                    f"{r['p50'] * 1000:>9.0f}{r['p99'] * 1000:>9.0f}",
                    flush=True,
                )
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
