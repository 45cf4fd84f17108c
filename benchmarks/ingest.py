"""Ingest from a real mosquitto into SQLite and PostgreSQL, one and two workers.

Two separate measurements, printed as one table (no assertions):

* drain: central's persistent session(s) are registered at the broker, central stops, N events are
  published from separate processes and queue at the broker; then central starts and the clock
  runs from the start-up call (the schema is already migrated) to the last committed row.
  events/s = N / that time. This is the sustained capacity, free of publisher competition.
* latency: one publisher process paced at a sustainable rate R while central runs; created_at is
  stamped at publish time and the commit time is when a poller (every POLL_S) first sees the row.

Loss is checked at the end of both: distinct event ids of the benchmark nodes == events sent
(central's own events, such as the probe node's, are not counted).

Usage: python -m benchmarks.ingest [--events N] [--rate R] [--seconds S] [--pg URL]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from pathlib import Path

import sqlalchemy as sa

from broker.client import BrokerAddress, MqttLink
from broker.mosquitto import Deployment, NodeEntry, mosquitto_conf
from broker.topics import event_topic
from broker.validate import encode
from central.app import CentralService
from central.config import CentralConfig
from central.db.migrate import upgrade
from central.db.models import Event
from tests.factories import make_event
from tests.faults.conftest import Db, wait_ingest_live
from tests.helpers import MosquittoServer, free_port

SITE = "changxing"
PUBLISHERS = 4  # drain: publishing processes (nodes), one connection each
POLL_S = 0.01  # commit time is when the poller first sees a row (+0..POLL_S)
GAP_KEEP_S = 10.0  # a skipped id not committed within this is taken as never coming
TIMEOUT_S = 120.0  # a run that has not seen every event by then reports the rest as lost
# created_at is replaced with the publish time; pydantic writes microseconds only when they are
# non-zero, so the placeholder has non-zero microseconds and the same length as the stamp.
PLACEHOLDER = "2000-01-01T00:00:00.123456Z"
# The broker's queue and in-flight settings are the ones broker/mosquitto.py ships.
QUEUE_KEYS = (
    "max_queued_messages",
    "max_queued_bytes",
    "max_inflight_messages",
    "queue_qos0_messages",
)


def shipped_queue_settings() -> str:
    """The queue/in-flight lines of the mosquitto.conf that broker/mosquitto.py generates."""
    dep = Deployment(nodes=[NodeEntry(site=SITE, node="cx-node-01")])
    text = mosquitto_conf(dep, Path("/nonexistent"))
    lines = [ln for ln in text.splitlines() if ln.split(" ", 1)[0] in QUEUE_KEYS]
    return "\n".join(lines) + "\n"


def _payloads(node: str, count: int) -> list[bytes]:
    placeholder = datetime.fromisoformat(PLACEHOLDER)
    return [
        encode(make_event(site=SITE, node=node, seq=seq, created_at=placeholder))
        for seq in range(1, count + 1)
    ]


def _stamp() -> bytes:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()


def _publish(port: int, node: str, count: int, rate: float) -> None:
    """A node in its own process (no GIL shared with central). Payloads are encoded first; only
    created_at is stamped at publish time. rate > 0 paces the publishes, 0 sends flat out."""
    link = MqttLink(f"bench-{node}-{uuid.uuid4().hex[:6]}", BrokerAddress("127.0.0.1", port))
    link.start()
    link.wait_connected(10)
    topic, marker = event_topic(SITE, node), PLACEHOLDER.encode()
    payloads = _payloads(node, count)
    handles = []
    start = time.perf_counter()
    for i, raw in enumerate(payloads):
        if rate > 0:
            pause = start + i / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        handles.append(link.publish(topic, raw.replace(marker, _stamp(), 1)))
    for h in handles:
        if not h.wait(120):
            raise SystemExit(f"{node}: publish {h.mid} not acknowledged")
    link.stop()


def _spawn(port: int, nodes: list[str], per_node: int, rate: float) -> list[BaseProcess]:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_publish, args=(port, n, per_node, rate)) for n in nodes]
    for p in procs:
        p.start()
    return list(procs)


def _join(procs: list[BaseProcess]) -> None:
    for p in procs:
        p.join(180)
        if p.exitcode != 0:
            raise RuntimeError(f"publisher exited with {p.exitcode}")


@dataclass
class Seen:
    """Rows of the benchmark nodes as the poller first saw them."""

    latencies: list[float]  # seen time - created_at (publish time), seconds
    last_seen: float  # time.time() when the last expected row was seen


def _poll(db: Db, nodes: list[str], expected: int, deadline: float) -> Seen:
    """Poll every POLL_S for new rows of `nodes` until `expected` were seen or the deadline.

    Ids are handed out at insert but become visible at commit, so with two workers (and with
    PostgreSQL's sequence) a lower id can appear after a higher one: ids skipped over are kept
    and asked for again until they show up or GAP_KEEP_S has passed (a rollback, another node).
    """
    latencies: list[float] = []
    last_id, last_seen = 0, time.time()
    gaps: dict[int, float] = {}  # skipped id -> when it was skipped
    query = sa.select(Event.id, Event.created_at).where(Event.node.in_(nodes))
    with db.engine.connect() as conn:
        while len(latencies) < expected and time.time() < deadline:
            newer = Event.id > last_id
            where = sa.or_(newer, Event.id.in_(list(gaps))) if gaps else newer
            rows = conn.execute(query.where(where)).all()
            conn.rollback()
            now, clock = datetime.now(UTC), time.time()
            for gap, since in list(gaps.items()):
                if clock - since > GAP_KEEP_S:
                    del gaps[gap]
            if not rows:
                time.sleep(POLL_S)
                continue
            last_seen = clock
            ids = set()
            for row_id, created in rows:
                latencies.append((now - created).total_seconds())
                gaps.pop(row_id, None)
                ids.add(row_id)
            top = max(ids)
            for gap in range(last_id + 1, top):
                if gap not in ids:
                    gaps[gap] = clock
            last_id = max(last_id, top)
    return Seen(latencies, last_seen)


def _distinct(db: Db, nodes: list[str]) -> int:
    with db.engine.connect() as conn:
        query = sa.select(sa.func.count(sa.distinct(Event.event_id))).where(Event.node.in_(nodes))
        return int(conn.scalar(query) or 0)


def _config(port: int, url: str, workers: int, tmp: Path) -> CentralConfig:
    return CentralConfig.model_validate(
        {
            "data_dir": str(tmp / uuid.uuid4().hex[:6]),
            "database_url": url,
            "mqtt": {
                "port": port,
                "client_id": f"bench-central-{uuid.uuid4().hex[:8]}",
                "share_group": f"g{uuid.uuid4().hex[:8]}" if workers > 1 else None,
                "workers": workers,
                "reconnect_max_s": 1.0,
            },
            # Measures storage, not SMS: as before duty phones were required, no one is paged.
            "alerts": {"allow_no_duty_phones": True},
        }
    )


def _forget_sessions(port: int, cfg: CentralConfig) -> None:
    """Drop central's persistent sessions at the broker (connect once with clean_session), so
    later runs' messages are not also queued for sessions nobody will ever resume."""
    mqtt = cfg.mqtt
    ids = (
        [mqtt.client_id]
        if mqtt.workers == 1
        else [f"{mqtt.client_id}-{n}" for n in range(mqtt.workers)]
    )
    for client_id in ids:
        link = MqttLink(client_id, BrokerAddress("127.0.0.1", port), clean_session=True)
        link.start()
        link.wait_connected(10)
        link.stop()


def drain(port: int, url: str, workers: int, events: int, tmp: Path) -> dict[str, float]:
    """Backlog queued at the broker while central is down, then timed from central's start."""
    cfg = _config(port, url, workers, tmp)
    central = CentralService(cfg, serve_http=False)
    central.start()  # migrates, and registers the persistent session(s) and subscriptions
    db = Db(url)
    wait_ingest_live(port, db)
    central.stop()
    nodes = [f"drain-{n}" for n in range(PUBLISHERS)]
    per_node = events // PUBLISHERS
    total = per_node * PUBLISHERS
    _join(_spawn(port, nodes, per_node, 0))  # every publish acknowledged: all queued at the broker
    upgrade(url)  # already at head: the timed start-up does not migrate
    central = CentralService(cfg, serve_http=False)
    start = time.time()
    central.start()
    seen = _poll(db, nodes, total, start + TIMEOUT_S)
    elapsed = seen.last_seen - start
    distinct = _distinct(db, nodes)
    central.stop()
    _forget_sessions(port, cfg)
    db.engine.dispose()
    return {"events": total, "lost": total - distinct, "rate": len(seen.latencies) / elapsed}


def latency(
    port: int, url: str, workers: int, rate: float, seconds: float, tmp: Path
) -> dict[str, float]:
    """One publisher paced at `rate` while central runs; publish → committed row latency."""
    cfg = _config(port, url, workers, tmp)
    central = CentralService(cfg, serve_http=False)
    central.start()
    db = Db(url)
    wait_ingest_live(port, db)
    nodes = ["paced-0"]
    total = int(rate * seconds)
    procs = _spawn(port, nodes, total, rate)
    seen = _poll(db, nodes, total, time.time() + seconds + TIMEOUT_S)
    _join(procs)
    distinct = _distinct(db, nodes)
    central.stop()
    _forget_sessions(port, cfg)
    db.engine.dispose()
    lat = sorted(seen.latencies) or [float("nan")]
    return {
        "events": total,
        "lost": total - distinct,
        "p50": statistics.median(lat),
        "p99": lat[max(0, int(len(lat) * 0.99) - 1)],
        "max": lat[-1],
    }


def _pg_database(base: str) -> str:
    name = f"ww_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(base).set(database=name).render_as_string(hide_password=False)


def _pg_drop(base: str, url: str) -> None:
    name = sa.make_url(url).database
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class FreshDb:
    """A new database per run: an SQLite file, or a PostgreSQL database dropped afterwards."""

    def __init__(self, kind: str, pg: str, tmp: Path) -> None:
        self.kind, self.pg = kind, pg
        self.url = (
            f"sqlite:///{tmp / uuid.uuid4().hex[:8]}.db" if kind == "sqlite" else _pg_database(pg)
        )

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *_exc: object) -> None:
        if self.kind == "postgresql":
            _pg_drop(self.pg, self.url)


def main() -> None:
    """Run every combination and print a table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000, help="drain backlog size")
    parser.add_argument("--rate", type=float, default=1_000.0, help="paced events/s (latency)")
    parser.add_argument("--seconds", type=float, default=10.0, help="paced duration (latency)")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ww-bench-"))
    (tmp / "mosquitto").mkdir()
    settings = shipped_queue_settings()
    broker = MosquittoServer(tmp / "mosquitto", free_port(), settings)
    broker.start()
    print("broker queue settings (from broker/mosquitto.py): " + "; ".join(settings.splitlines()))
    print(
        f"drain: {args.events} events queued at the broker by {PUBLISHERS} processes while "
        "central is down, timed from central start to last committed row"
    )
    print(
        f"latency: 1 publisher paced at {args.rate:.0f}/s for {args.seconds:.0f} s, "
        f"publish -> row seen by a {POLL_S * 1000:.0f} ms poller"
    )
    head = ("database", "workers", "drain n", "lost", "ev/s", "paced n", "lost", "p50 ms")
    print("{:<11}{:>8}{:>9}{:>6}{:>8}{:>9}{:>6}{:>8}{:>8}{:>8}".format(*head, "p99 ms", "max ms"))
    try:
        for kind in ("sqlite", "postgresql"):
            for workers in (1, 2):
                with FreshDb(kind, args.pg, tmp) as url:
                    d = drain(broker.port, url, workers, args.events, tmp)
                with FreshDb(kind, args.pg, tmp) as url:
                    lt = latency(broker.port, url, workers, args.rate, args.seconds, tmp)
                print(
                    f"{kind:<11}{workers:>8}{d['events']:>9.0f}{d['lost']:>6.0f}{d['rate']:>8.0f}"
                    f"{lt['events']:>9.0f}{lt['lost']:>6.0f}{lt['p50'] * 1000:>8.0f}"
                    f"{lt['p99'] * 1000:>8.0f}{lt['max'] * 1000:>8.0f}",
                    flush=True,
                )
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
