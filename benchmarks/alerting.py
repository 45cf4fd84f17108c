"""Duty alerting, end to end on loopback: edge outbox -> real mosquitto -> central ingest -> the
duty pager -> Tencent Cloud SMS's API (the real SDK against the local server in
tests/peers/tencent_sms.py). Prints three tables, no assertions.

1. latency: N anomalies, each its own incident (a camera fault per camera, so none groups with
   another), put into the outboxes of two nodes (one per site) at `--rate` per second. Latency
   is from just before `Outbox.add` to the moment the SMS server received the SendSms call for
   that incident. Critical pages at once (its group_wait is 0 by default); the figure for
   other severities is this plus their group_wait (30 s by default).
2. escalation timing: incidents nobody acknowledges, with a chain of duty officer at once,
   backup after B s and station head after 2B s; the error is when each later step reached the
   provider minus (when the first step did + its configured delay).
3. a die-off: ten dead egrets reported one after another; messages sent per person and per step
   until the station head is paged, then the duty officer takes the alert (everyone paged is
   told who), against what the per-event path sends (one message per bird per phone).

Each runs on SQLite and on PostgreSQL (a fresh database each time), `--db` to choose.

Usage: python -m benchmarks.alerting [--events N] [--rate R] [--step-s B] [--db sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.ingest import FreshDb
from broker.client import BrokerAddress, MqttLink
from broker.payloads import EventPayload
from central import accounts
from central.app import CentralService
from central.config import CentralConfig
from central.db.models import Alert, AlertNotification, User
from central.roster import DutyRole
from edge.outbox import Outbox
from edge.publish.drain import Publisher
from tests.central.conftest import EGRET, SITES, on_duty_all_day
from tests.central.web.station import add_people
from tests.factories import make_event
from tests.helpers import MosquittoServer, free_port, wait_for
from tests.peers.tencent_sms import TencentSmsServer

KEY_ENV = "WILDWATCH_BENCH_TENCENT_KEY"
NODES = {"changxing": "cx-node-01", "xiazhuhu": "dq-node-01"}
# name -> (site, role, phone, display name)
PEOPLE = {
    "wang": ("changxing", DutyRole.DUTY, "13800000001", "王伟"),
    "li": ("changxing", DutyRole.BACKUP, "13800000002", "李娜"),
    "zhang": ("changxing", DutyRole.HEAD, "13800000003", "张站长"),
    "zhou": ("xiazhuhu", DutyRole.DUTY, "13800000004", "周敏"),
}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def _station(
    broker: MosquittoServer,
    sms: TencentSmsServer,
    tmp: Path,
    database_url: str,
    escalation: dict[str, Any],
) -> Iterator[CentralService]:
    """Central with the pager on Tencent, the roster of PEOPLE, ingest connected."""
    config = CentralConfig.model_validate(
        {
            "data_dir": str(tmp / uuid.uuid4().hex[:8]),
            "database_url": database_url,
            "mqtt": {"port": broker.port, "client_id": f"bench-central-{uuid.uuid4().hex[:8]}"},
            "http": {"host": "127.0.0.1", "port": free_port()},
            "sites": SITES,
            "alerts": {
                "escalation": escalation,
                "daily_cap_per_number": 500,
                "providers": [
                    sms.provider_config(KEY_ENV, timeout_s=5),
                ],
            },
        }
    )
    os.environ[KEY_ENV] = sms.secret_key
    service = CentralService(config)
    service.start()
    try:
        assert service.session_factory is not None
        with service.session_factory.begin() as session:
            add_people(
                session,
                {n: (accounts.Role.STAFF, [p[0]], p[3]) for n, p in PEOPLE.items()},
                known_sites=config.sites,
            )
            for name, (site, role, phone, _) in PEOPLE.items():
                session.scalars(sa.select(User).where(User.name == name)).one().phone = phone
                on_duty_all_day(session, user_name=name, role=role, site=site)
        if not all(i.wait_connected(10) for i in service.ingestors):
            raise SystemExit("central did not connect to mosquitto")
        yield service
    finally:
        service.stop()


@contextmanager
def _nodes(broker: MosquittoServer, tmp: Path) -> Iterator[dict[str, Outbox]]:
    """One edge node per site: its outbox and the publisher that drains it to the broker."""
    outboxes: dict[str, Outbox] = {}
    running: list[tuple[MqttLink, Publisher, Outbox]] = []
    try:
        for site, node in NODES.items():
            outbox = Outbox(tmp / f"{node}-{uuid.uuid4().hex[:6]}.db")
            link = MqttLink(
                f"bench-{node}-{uuid.uuid4().hex[:6]}", BrokerAddress("127.0.0.1", broker.port)
            )
            link.start()
            if not link.wait_connected(10):
                raise SystemExit(f"{node} did not connect to mosquitto")
            publisher = Publisher(outbox, link)
            publisher.start()
            outboxes[site] = outbox
            running.append((link, publisher, outbox))
        yield outboxes
    finally:
        for link, publisher, outbox in running:
            publisher.stop()
            link.stop()
            outbox.close()


def _sms_server(**caps: Any) -> TencentSmsServer:
    return TencentSmsServer(templates={"2001": 4, "2002": 2}, **caps)


def _camera_fault(site: str, n: int) -> EventPayload:
    return make_event(
        site=site,
        node=NODES[site],
        camera=f"cam-{n:04d}",
        kind="anomaly",
        rule="camera_health",
        category="camera",
        severity="critical",
        count=1,
        message_zh=f"基准{n:04d}",
    )


def latency(broker: MosquittoServer, tmp: Path, url: str, events: int, rate: float) -> None:
    with (
        _sms_server(same_content_interval_s=0, daily_limit=10**6) as sms,
        _station(broker, sms, tmp, url, {}) as _service,
        _nodes(broker, tmp) as outboxes,
    ):
        put: dict[str, float] = {}
        start = time.perf_counter()
        for n in range(events):
            pause = start + n / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            site = "changxing" if n % 2 == 0 else "xiazhuhu"
            event = _camera_fault(site, n)
            put[event.message_zh] = time.time()
            outboxes[site].add([event])
        wait_for(lambda: len(sms.sent) >= events, 120)
        got = {s.params[1]: s.sent_at for s in sms.sent}
    lat = [(got[k] - t) * 1000 for k, t in put.items() if k in got]
    print(f"\n## Alert latency: outbox -> provider API ({events} incidents at {rate:g}/s)\n")
    print("| incidents | paged | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|")
    print(
        f"| {events} | {len(lat)} | {statistics.median(lat):.0f} | {_pct(lat, 0.95):.0f} "
        f"| {max(lat):.0f} |"
    )


def _chain(step_s: float) -> list[dict[str, Any]]:
    """Duty officer at once, backup after step_s, station head after 2 * step_s."""
    return [
        {"role": "duty", "after_s": 0},
        {"role": "backup", "after_s": step_s},
        {"role": "head", "after_s": 2 * step_s},
    ]


def escalation(broker: MosquittoServer, tmp: Path, url: str, step_s: float) -> None:
    incidents = 20
    policy = {"steps": _chain(step_s), "group_wait_s": 0}
    with (
        _sms_server(same_content_interval_s=0, daily_limit=10**6) as sms,
        _station(broker, sms, tmp, url, {"policies": {"critical": policy}}) as _service,
        _nodes(broker, tmp) as outboxes,
    ):
        outboxes["changxing"].add([_camera_fault("changxing", n) for n in range(incidents)])
        wait_for(lambda: len(sms.sent) >= 3 * incidents, 4 * step_s + 60)
        sent = list(sms.sent)
    by_incident: dict[str, dict[str, float]] = {}
    for s in sent:
        by_incident.setdefault(s.params[1], {})[s.phone[-11:]] = s.sent_at
    errors: dict[str, list[float]] = {"backup": [], "head": []}
    for times in by_incident.values():
        first = times.get(PEOPLE["wang"][2])
        if first is None:
            continue
        for role, name, delay in (("backup", "li", step_s), ("head", "zhang", 2 * step_s)):
            if PEOPLE[name][2] in times:
                errors[role].append((times[PEOPLE[name][2]] - first - delay) * 1000)
    print(f"\n## Escalation timing ({incidents} incidents, nobody takes them)\n")
    print("| step | configured delay | reached | error mean ms | min ms | max ms |")
    print("|---|---|---|---|---|---|")
    for role, delay in (("backup", step_s), ("head", 2 * step_s)):
        e = errors[role]
        if e:
            print(
                f"| {role} | {delay:g} s | {len(e)}/{incidents} | {statistics.mean(e):.0f} "
                f"| {min(e):.0f} | {max(e):.0f} |"
            )
        else:
            print(f"| {role} | {delay:g} s | 0/{incidents} | - | - | - |")


def die_off(broker: MosquittoServer, tmp: Path, url: str, step_s: float) -> None:
    birds = 10
    policy = {
        "steps": _chain(step_s),
        "repeat": 1,
        "repeat_after_s": 4 * step_s,
        "group_wait_s": step_s / 2,
    }
    with (
        _sms_server() as sms,
        _station(broker, sms, tmp, url, {"policies": {"alert": policy}}) as service,
        _nodes(broker, tmp) as outboxes,
    ):
        for n in range(birds):  # one after another, as a keeper walks the shore
            bird = make_event(
                node=NODES["changxing"],
                camera=f"cx-cam-{n % 3 + 1:02d}",
                kind="anomaly",
                rule="motionless_bird",
                severity="alert",
                species=EGRET,
                count=1,
                message_zh="白鹭疑似死亡",
            )
            outboxes["changxing"].add([bird])
            time.sleep(0.3)
        wait_for(lambda: len(sms.sent) >= 3, 3 * step_s + 30)  # up to the station head
        pager = service.pager
        assert pager is not None and service.session_factory is not None
        with service.session_factory() as session:
            alert = session.scalars(sa.select(Alert)).one()
            alert_id, count = alert.id, alert.event_count
        pager.acknowledge(by="wang", now=datetime.now(UTC), alert_id=alert_id)
        wait_for(lambda: len(sms.sent) >= 5, 30)
        time.sleep(4 * step_s + 2)  # the repeat would have come by now: nothing more is sent
        with service.session_factory() as session:
            rows = list(session.scalars(sa.select(AlertNotification)))
    print(f"\n## A die-off: {birds} dead egrets, one alert ({count} birds in it)\n")
    print("| person | alert messages | 'taken by' notices | per-event path (one per bird) |")
    print("|---|---|---|---|")
    sent = Counter((r.phone, r.template) for r in rows if r.state in ("submitted", "delivered"))
    for name in ("wang", "li", "zhang"):
        phone, shown = PEOPLE[name][2], PEOPLE[name][3]
        print(
            f"| {shown} ({name}) | {sent[phone, 'alert']} | {sent[phone, 'ack_notice']} | {birds} |"
        )
    total = Counter(t for (_, t), n in sent.items() for _ in range(n))
    print(f"| total | {total['alert']} | {total['ack_notice']} | {birds * 3} |")
    print(f"\nSMS the provider received: {len(sms.sent)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0, help="incidents per second")
    parser.add_argument("--step-s", type=float, default=5.0, help="escalation delay unit")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], action="append")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ww-bench-alerting-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "mosquitto").mkdir()
        broker = MosquittoServer(tmp / "mosquitto", free_port())
        broker.start()
        try:
            for kind in args.db or ["sqlite", "postgresql"]:
                print(f"\n# {kind}")
                with FreshDb(kind, args.pg, tmp) as url:
                    latency(broker, tmp, url, args.events, args.rate)
                with FreshDb(kind, args.pg, tmp) as url:
                    escalation(broker, tmp, url, args.step_s)
                with FreshDb(kind, args.pg, tmp) as url:
                    die_off(broker, tmp, url, args.step_s)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
