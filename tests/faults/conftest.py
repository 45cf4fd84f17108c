"""Fault-test fixtures: a broker per test (it gets stopped), central configs, process runners."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from broker.client import BrokerAddress, MqttLink
from broker.payloads import HeartbeatPayload
from broker.topics import heartbeat_topic
from broker.validate import encode
from central.config import CentralConfig
from central.db.models import DeadLetter, Event, Node
from central.db.session import make_engine
from tests.central.conftest import SITES, unique
from tests.conftest import REPO
from tests.helpers import MosquittoServer, free_port, wait_for

SITE, NODE = "changxing", "cx-node-01"


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[MosquittoServer]:
    """A mosquitto of this test's own (persistence on, unlimited queues), so it can be stopped."""
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    server = MosquittoServer(workdir, free_port())
    server.start()
    yield server
    server.stop()


def central_settings(tmp_path: Path, database_url: str, port: int, **mqtt: Any) -> dict[str, Any]:
    """Plain data of a central config for this test (fast reconnects, tiny check interval)."""
    return {
        "data_dir": str(tmp_path / "central"),
        "database_url": database_url,
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "client_id": unique("central-"),
            "reconnect_max_s": 0.5,
            **mqtt,
        },
        "sites": SITES,
        "alerts": {"duty_phones": ["13800000000"], "sms_file": str(tmp_path / "sms.jsonl")},
        "monitor": {"check_interval_s": 0.2, "offline_after_s": 3600},
    }


@pytest.fixture()
def central_config(tmp_path: Path, database_url: str, broker: MosquittoServer) -> CentralConfig:
    """Central config for this test's broker and database."""
    return CentralConfig.model_validate(central_settings(tmp_path, database_url, broker.port))


class Db:
    """Counting queries the fault tests assert on."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    def count(self, model: type[Any]) -> int:
        """Rows of a table (0 before the schema exists)."""
        try:
            with self.engine.connect() as conn:
                return int(conn.scalar(sa.select(sa.func.count()).select_from(model)) or 0)
        except sa.exc.OperationalError:
            return 0
        except sa.exc.ProgrammingError:
            return 0

    def events(self) -> int:
        """Stored events."""
        return self.count(Event)

    def distinct_events(self) -> int:
        """Distinct event ids stored."""
        with self.engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count(sa.distinct(Event.event_id)))) or 0)

    def seqs_in_arrival_order(self, node: str = NODE) -> list[int]:
        """Sequence numbers of a node's events in the order they were stored."""
        with self.engine.connect() as conn:
            return list(
                conn.scalars(sa.select(Event.seq).where(Event.node == node).order_by(Event.id))
            )

    def dead_letters(self) -> int:
        """Dead-lettered messages."""
        return self.count(DeadLetter)

    def node(self, node: str = NODE) -> Any:
        """The nodes row of a node (None when unknown)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(Node).where(Node.node == node)).one_or_none()


@pytest.fixture()
def db(database_url: str) -> Iterator[Db]:
    """Queries on this test's database."""
    d = Db(database_url)
    yield d
    d.engine.dispose()


def node_link(port: int, *, client_id: str | None = None) -> MqttLink:
    """A connected node-side link with fast reconnects and a persistent session."""
    link = MqttLink(
        client_id or f"wildwatch-{SITE}-{NODE}",
        BrokerAddress("127.0.0.1", port),
        clean_session=False,
        reconnect_min_s=0.2,
        reconnect_max_s=0.5,
    )
    link.start()
    assert link.wait_connected(10)
    return link


def wait_ingest_live(port: int, db: Db, timeout_s: float = 30.0) -> None:
    """Publish probe heartbeats until central has stored one (its subscription is live)."""
    link = MqttLink(unique("probe-"), BrokerAddress("127.0.0.1", port), clean_session=True)
    link.start()
    try:
        assert link.wait_connected(10)
        probe = HeartbeatPayload(
            site="probe",
            node="probe",
            sent_at=datetime.now(UTC),
            uptime_s=1,
            outbox_depth=0,
            software_version="test",
        )

        def heard() -> bool:
            link.publish(heartbeat_topic("probe", "probe"), encode(probe), qos=1).wait(5)
            return wait_for(lambda: db.node("probe") is not None, 0.5)

        assert wait_for(heard, timeout_s), "central never stored the probe heartbeat"
    finally:
        link.stop()


class Proc:
    """A `python -m tests.faults.procs` child that a test can SIGKILL and start again."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args, self.log = args, log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (again) and wait until it says it started."""
        out = self.log.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.procs", *self.args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=out,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline()
        assert b"started" in line, f"{self.args[0]} did not start: {self.log.read_text()}"
        threading.Thread(target=self.popen.stdout.read, daemon=True).start()

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait (a no-op when already dead)."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


@pytest.fixture()
def procs(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Factory of child processes, all stopped at the end of the test."""
    made: list[Proc] = []

    def make(*args: str) -> Proc:
        p = Proc(list(args), tmp_path / f"{args[0]}.log")
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def write_config(tmp_path: Path, settings: dict[str, Any]) -> Path:
    """Write a central YAML config and return its path."""
    path = tmp_path / "central.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path
