"""Sample PDFs of the daily report for a person to look at, and their figures.

Writes zero_report.pdf (one site, nothing seen) and busy_day.pdf (two sites, N anomalies, the
epidemic ones with evidence thumbnails from ../shared/data/images) into OUT, renders every page
to PNG with pdftoppm (poppler-utils), and prints size, pages and render time. No assertions.

Usage: python -m benchmarks.report_pdf [--out DIR] [--anomalies N]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path

from central.reports.pdf import write_pdf
from tests.central.report_days import busy_day, zero_day

REPO = Path(__file__).resolve().parents[1]


def _pages(path: Path) -> int:
    out = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    return next(
        int(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("Pages:")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("report-samples"))
    parser.add_argument("--anomalies", type=int, default=120)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    evidence = out / "evidence"
    samples = {
        "zero_report": (zero_day(), None),
        "busy_day": (
            busy_day(evidence, args.shared / "data" / "images", anomalies=args.anomalies),
            evidence,
        ),
    }
    print(f"{'sample':<12} {'anomalies':>9} {'pages':>5} {'size KB':>8} {'render ms':>9}")
    for name, (report, evidence_dir) in samples.items():
        started = time.perf_counter()
        path = write_pdf(report, out / f"{name}.pdf", evidence_dir=evidence_dir)
        ms = (time.perf_counter() - started) * 1000
        anomalies = sum(len(s.anomalies) for s in report.sites)
        pages = _pages(path) if shutil.which("pdfinfo") else -1
        if shutil.which("pdftoppm"):
            subprocess.run(["pdftoppm", "-r", "80", "-png", str(path), str(out / name)], check=True)
        size = path.stat().st_size / 1024
        print(f"{name:<12} {anomalies:>9} {pages:>5} {size:>8.0f} {ms:>9.0f}")
    print(f"PDFs and page images in {out.resolve()}")


if __name__ == "__main__":
    main()
