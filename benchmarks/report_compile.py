"""Daily report compile time for a province-sized central: 100 sites, 100,000 events in the day.

    python -m benchmarks.report_compile [--sites 100] [--events 100000] [--pg URL | --no-pg]

Fills a fresh database (Alembic) with N events captured in one report window over S sites (5 %
anomalies, most reviewed), then times, best of 3: building the report (every query and the
model: `build_daily_report`), then writing it (JSON and XLSX; PDF). Goal: build < 2 s on SQLite
and PostgreSQL. Prints a table; no assertions.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from benchmarks.console import PG_DEFAULT, event_rows
from benchmarks.ingest import FreshDb
from central.config import CentralConfig
from central.db.migrate import upgrade
from central.db.models import Event
from central.db.session import make_engine, make_session_factory
from central.reports import record
from central.reports.daily import build_daily_report, report_day_for, report_window

REPEATS = 3


def _config(url: str, sites: list[str], data_dir: Path) -> CentralConfig:
    return CentralConfig.model_validate(
        {
            "data_dir": str(data_dir),
            "database_url": url,
            "report": {"station_name": "浙江省", "station_code": "ZJ"},
            "sites": {
                s: {"name_zh": f"监测站{i:03d}", "station_code": f"ZJ-{i:03d}"}
                for i, s in enumerate(sites)
            },
            "alerts": {"allow_no_duty_phones": True},
        }
    )


def _fill(url: str, config: CentralConfig, n: int) -> float:
    upgrade(url)
    engine = make_engine(url)
    day = report_day_for(datetime.now(UTC), config) - timedelta(days=1)
    start, end = report_window(config=config, day=day)
    rows = event_rows(
        n,
        random.Random(11),
        sites=list(config.sites),
        end=end - timedelta(seconds=1),
        span=end - start - timedelta(seconds=2),
        anomaly_share=0.05,
    )
    began = time.perf_counter()
    with engine.begin() as conn:
        for i in range(0, n, 5000):
            conn.execute(sa.insert(Event), rows[i : i + 5000])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - began


def _measure(label: str, url: str, config: CentralConfig, n: int) -> None:
    filled = _fill(url, config, n)
    engine = make_engine(url)
    day = report_day_for(datetime.now(UTC), config) - timedelta(days=1)
    builds, files, pdfs = [], [], []
    report = None
    for _ in range(REPEATS):
        with make_session_factory(engine)() as session:
            began = time.perf_counter()
            report = build_daily_report(session=session, config=config, day=day)
            builds.append(time.perf_counter() - began)
        out = config.report_dir / label
        began = time.perf_counter()
        record.write_report(report, out)
        files.append(time.perf_counter() - began)
        began = time.perf_counter()
        pdf = record.write_pdf(
            report, record.pdf_path(out, day), evidence_dir=config.evidence_dir, font=None
        )
        pdfs.append(time.perf_counter() - began)
    engine.dispose()
    assert report is not None
    anomalies = sum(len(s.anomalies) for s in report.sites)
    print(
        f"{label:<11}{len(report.sites):>6}{n:>9,}{anomalies:>10,}{filled:>9.1f}"
        f"{min(builds):>9.2f}{min(files):>13.2f}{min(pdfs):>9.2f}"
        f"{pdf.stat().st_size / 1024:>9.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL server URL (admin)")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ww-report-bench-"))
    sites = [f"site{i:03d}" for i in range(args.sites)]
    print(
        f"{'database':<11}{'sites':>6}{'events':>9}{'anomalies':>10}{'fill s':>9}"
        f"{'build s':>9}{'JSON+XLSX s':>13}{'PDF s':>9}{'PDF KB':>9}"
    )
    kinds = ["sqlite"] if args.no_pg else ["sqlite", "postgresql"]
    for kind in kinds:
        with FreshDb(kind, args.pg, work) as url:
            label = "SQLite" if kind == "sqlite" else "PostgreSQL"
            _measure(label, url, _config(url, sites, work), args.events)


if __name__ == "__main__":
    main()
