"""Console page speed with 100,000 events in the database (SQLite and PostgreSQL).

    python -m benchmarks.console [--events 100000] [--requests 40] [--pg URL | --no-pg]

Fills a fresh database (migrated by Alembic) with N events over 60 days at two sites (a fifth
anomalies, most of them reviewed, evidence rows for a tenth), then requests each page as a
logged-in station staff member of one site and as the bureau (every site) through the real app
(FastAPI TestClient, in process: the time is the server's, no network). Prints p50 / p95 / max
ms per page. Target: p95 <= 200 ms for the queue and the browse page. No assertions.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from central.app import create_app
from central.config import CentralConfig
from central.db.migrate import upgrade
from central.db.models import Event, EvidenceFile
from central.db.session import make_engine, make_session_factory
from tests.central.web.conftest import csrf_of
from tests.central.web.station import PEOPLE, add_people

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SITES = {"changxing": {"name_zh": "长兴"}, "xiazhuhu": {"name_zh": "下渚湖"}}
RULES = [
    "motionless_bird",
    "abnormal_count",
    "night_intrusion",
    "free_roaming_dog",
    "high_risk_species",
    "camera_health",
]
SPECIES = [
    ("Egretta garzetta", "白鹭"),
    ("Ardea cinerea", "苍鹭"),
    ("Anas platyrhynchos", "绿头鸭"),
    ("Nipponia nippon", "朱鹮"),
    ("Bubulcus ibis", "牛背鹭"),
    (None, None),
]
PASSWORD = "benchmark-password"
PAGES = [
    ("queue", "/queue"),
    ("browse", "/events"),
    ("browse p.50", "/events?page=50"),
    ("browse filtered", "/events?rule=motionless_bird&review=unreviewed"),
    ("browse species", "/events?species=白鹭"),
    ("browse 7 days", "/events?from={week_ago}"),
    ("event", "/events/{event_id}"),
    ("stats (30 days)", "/stats"),
    ("status", "/status"),
    ("reports (today)", "/reports"),
]


def event_rows(
    n: int,
    rng: random.Random,
    *,
    sites: list[str] | None = None,
    end: datetime | None = None,
    span: timedelta = timedelta(days=60),
    anomaly_share: float = 0.2,
) -> list[dict[str, Any]]:
    """n event rows for a bulk insert: captured in [end - span, end), spread over `sites`."""
    end = end or datetime.now(UTC)
    sites = sites or list(SITES)
    rows = []
    for i in range(n):
        anomaly = rng.random() < anomaly_share
        at = end - timedelta(seconds=rng.uniform(0, span.total_seconds()))
        scientific, chinese = rng.choice(SPECIES)
        review = "unreviewed"
        if (anomaly and rng.random() < 0.9) or (not anomaly and rng.random() < 0.3):
            review = rng.choice(["confirmed", "dismissed"])
        site = rng.choice(sites)
        rows.append(
            {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "seq": i + 1,
                "site": site,
                "node": f"{site[:2]}-0{rng.randint(1, 3)}",
                "camera": f"cam{rng.randint(1, 4)}",
                "kind": "anomaly" if anomaly else "observation",
                "category": "bird",
                "rule": rng.choice(RULES) if anomaly else None,
                "severity": rng.choice(["critical", "alert", "warning"]) if anomaly else "info",
                "count": rng.randint(1, 5),
                "confidence": 0.9,
                "species_scientific": scientific,
                "species_chinese": chinese,
                "species_confidence": 0.8 if scientific else None,
                "captured_at": at,
                "created_at": at,
                "received_at": at,
                "message_zh": "发现白鹭",
                "message_en": "egret",
                "source": "",
                "model": "yolox_nano",
                "boxes": [
                    {
                        "x": 0.1,
                        "y": 0.1,
                        "w": 0.2,
                        "h": 0.2,
                        "category": "bird",
                        "label": "bird",
                        "confidence": 0.9,
                    }
                ],
                "payload": {},
                "review_status": review,
            }
        )
    return rows


def fill(url: str, n: int) -> tuple[str, float]:
    upgrade(url)
    engine = make_engine(url)
    rng = random.Random(7)
    start = time.perf_counter()
    rows = event_rows(n, rng)
    with engine.begin() as conn:
        for i in range(0, n, 5000):
            conn.execute(sa.insert(Event), rows[i : i + 5000])
        evidence = [
            {
                "event_id": r["event_id"],
                "name": "frame.jpg",
                "sha256": "0" * 64,
                "size": 1,
                "path": "x/frame.jpg",
                "received_at": r["received_at"],
            }
            for r in rows[::10]
        ]
        for i in range(0, len(evidence), 5000):
            conn.execute(sa.insert(EvidenceFile), evidence[i : i + 5000])
    with make_session_factory(engine).begin() as session:
        people = {"wang": PEOPLE["wang"], "sheng": PEOPLE["sheng"]}
        add_people(session, people, known_sites=SITES, password=PASSWORD)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    return rows[n // 2]["event_id"], time.perf_counter() - start


def measure(url: str, data_dir: Path, event_id: str, requests: int) -> None:
    engine = make_engine(url)
    config = CentralConfig.model_validate(
        {
            "data_dir": str(data_dir),
            "database_url": url,
            "sites": SITES,
            "alerts": {"allow_no_duty_phones": True},
        }
    )
    app = create_app(config=config, session_factory=make_session_factory(engine))
    week_ago = (datetime.now(UTC) - timedelta(days=7)).date().isoformat()
    for who in ("wang", "sheng"):
        with TestClient(app) as client:
            page = client.get("/login")
            client.post(
                "/login", data={"name": who, "password": PASSWORD, "csrf_token": csrf_of(page.text)}
            )
            for label, path in PAGES:
                target = path.format(week_ago=week_ago, event_id=event_id)
                if who == "wang" and "{event_id}" in path:
                    continue  # the sample event may be the other site's
                times = []
                for _ in range(requests):
                    t0 = time.perf_counter()
                    r = client.get(target)
                    times.append((time.perf_counter() - t0) * 1000)
                    if r.status_code != 200:
                        raise SystemExit(f"{target}: {r.status_code} {r.text[:200]}")
                times.sort()
                p95 = times[max(0, int(len(times) * 0.95) - 1)]
                sent = int(r.headers.get("content-length", len(r.content)))  # gzip-compressed
                print(
                    f"  {who:<6} {label:<16} p50 {statistics.median(times):6.1f}  "
                    f"p95 {p95:6.1f}  max {times[-1]:6.1f} ms  "
                    f"({len(r.content) / 1024:.0f} KB, {sent / 1024:.0f} KB sent)"
                )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL server URL (admin)")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ww-console-bench-"))
    targets: list[tuple[str, str, tuple[sa.Engine, str] | None]] = [
        ("SQLite", f"sqlite:///{work / 'central.db'}", None)
    ]
    if not args.no_pg:
        name = f"ww_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(args.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.make_url(args.pg).set(database=name).render_as_string(hide_password=False)
        targets.append(("PostgreSQL", url, (admin, name)))
    for label, url, cleanup in targets:
        try:
            event_id, seconds = fill(url, args.events)
            print(
                f"{label}: {args.events:,} events stored in {seconds:.0f} s; "
                f"{args.requests} requests per page"
            )
            measure(url, work / label, event_id, args.requests)
        finally:
            if cleanup is not None:
                admin_engine, name = cleanup
                with admin_engine.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin_engine.dispose()


if __name__ == "__main__":
    main()
