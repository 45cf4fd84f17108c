"""What each install costs a machine: virtualenv size and command start-up per extra.

Builds a fresh virtualenv per extra from this checkout (a wheel, as a Raspberry Pi would install
it), then times `wildwatch edge run --help` (the node's command line starting) and
`wildwatch --help`. Prints one row per extra.

    python -m benchmarks.install [--extras edge all] [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def _startup_ms(command: list[str], runs: int, cwd: Path) -> float:
    """Median wall time of `command` over `runs` runs, after one warm-up run."""
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def measure(extra: str, runs: int, work: Path) -> tuple[float, float, float, float]:
    """(virtualenv MB, install s, `edge run --help` ms, `--help` ms) for one extra."""
    venv = work / f"venv-{extra}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    start = time.perf_counter()
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"{ROOT}[{extra}]"],
        check=True,
    )
    install_s = time.perf_counter() - start
    wildwatch = str(venv / "bin" / "wildwatch")
    edge_ms = _startup_ms([wildwatch, "edge", "run", "--help"], runs, work)
    root_ms = _startup_ms([wildwatch, "--help"], runs, work)
    return _size_mb(venv), install_s, edge_ms, root_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", nargs="+", default=["edge", "all"])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command")
    args = parser.parse_args()
    print(
        f"{'extra':8} {'virtualenv MB':>14} {'install s':>10} "
        f"{'edge run --help ms':>19} {'--help ms':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for extra in args.extras:
            size, install_s, edge_ms, root_ms = measure(extra, args.runs, Path(tmp))
            print(f"{extra:8} {size:14.0f} {install_s:10.0f} {edge_ms:19.0f} {root_ms:10.0f}")


if __name__ == "__main__":
    main()
