"""Export time and size of the labelled dataset (central/datasets.py) for N reviewed events.

Builds a new database (SQLite, then PostgreSQL: one of its own, dropped afterwards) with N
reviewed events on 4 cameras (bursts of 3 frames 20 s apart: one sequence each), every one with
a frame and a crop from ../shared/data/images stored as central stores evidence (hard links, so
N may be large), 70 % confirmed, 20 % dismissed as background, 10 % as wrong species; then
times the export and prints images, annotations, sequences, zip size and seconds. No assertions.

Usage: python -m benchmarks.dataset_export [--events N] [--pg URL | --no-pg]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from benchmarks.ingest import FreshDb
from central import crud, datasets
from central.db.migrate import upgrade
from central.db.models import REVIEW_CONFIRMED, REVIEW_DISMISSED, EvidenceFile
from central.db.session import make_engine, make_session_factory
from tests.central.conftest import make_event

REPO = Path(__file__).resolve().parents[1]
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 1, 6, tzinfo=TZ)
EGRET = {"scientific_name": "Egretta garzetta", "chinese_name": "白鹭", "confidence": 0.9}
BOX = {"x": 0.3, "y": 0.2, "w": 0.25, "h": 0.4, "category": "bird", "label": "bird"}


def _seed(url: str, evidence_dir: Path, images: list[Path], n: int) -> None:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    shas = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in images}
    now = datetime.now(UTC)
    with factory() as session:
        for i in range(n):
            image, crop = images[i % len(images)], images[(i + 1) % len(images)]
            at = START + timedelta(seconds=20 * i + 600 * (i // 3))
            event = make_event(
                seq=i + 1,
                camera=f"cam{(i // 3) % 4}",
                captured_at=at,
                created_at=at + timedelta(seconds=2),
                boxes=[{**BOX, "confidence": 0.8}],
                species=EGRET,
            )
            event_id = str(event.event_id)
            folder = evidence_dir / "changxing" / "cx-01" / event_id
            folder.mkdir(parents=True)
            names = {f"IMG_{i}.jpg": image, f"IMG_{i}_crop0.jpg": crop}
            crud.insert_event(session=session, payload=event, received_at=now)
            session.flush()
            for name, source in names.items():
                os.link(source, folder / name)
                session.add(
                    EvidenceFile(
                        event_id=event_id,
                        name=name,
                        sha256=shas[source],
                        size=source.stat().st_size,
                        path=f"changxing/cx-01/{event_id}/{name}",
                        received_at=now,
                    )
                )
            decision, reason = (
                (REVIEW_CONFIRMED, None)
                if i % 10 < 7
                else (REVIEW_DISMISSED, "background" if i % 10 < 9 else "wrong_species")
            )
            crud.review_event(
                session=session,
                event_id=event_id,
                decision=decision,
                reviewer="bench",
                note="",
                at=now,
                reason=reason,
            )
            if i % 500 == 499:
                session.commit()
        session.commit()
    engine.dispose()


def _measure(label: str, url: str, root: Path, images: list[Path], n: int) -> None:
    upgrade(url)
    started = time.perf_counter()
    _seed(url, root / "evidence", images, n)
    seeded = time.perf_counter() - started
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            since = START - timedelta(days=1)
            summary = datasets.export(
                session=session,
                evidence_dir=root / "evidence",
                tz=TZ,
                since=since,
                until=since + timedelta(days=60),
                out=root / "set.zip",
                station="bench",
            )
    finally:
        engine.dispose()
    print(
        f"{label}: seeded {n} events in {seeded:.1f} s; {summary.images} images "
        f"({summary.empty} empty), {summary.annotations} annotations, {summary.sequences} "
        f"sequences: {summary.bytes / 1e6:.1f} MB in {summary.seconds:.2f} s "
        f"({summary.images / summary.seconds:.0f} images/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL server URL (admin)")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = parser.parse_args()
    images = sorted((args.shared / "data" / "images").glob("*.jpg"))
    for kind in ["sqlite"] if args.no_pg else ["sqlite", "postgresql"]:
        with tempfile.TemporaryDirectory() as tmp, FreshDb(kind, args.pg, Path(tmp)) as url:
            label = "SQLite" if kind == "sqlite" else "PostgreSQL"
            _measure(label, url, Path(tmp), images, args.events)


if __name__ == "__main__":
    main()
