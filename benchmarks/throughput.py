"""Folder throughput: a plain decode-then-detect loop beside the prefetching pipeline.

Usage: python -m benchmarks.throughput [--shared ../shared] [--threads 2] [--rounds 2]
Prints images/s, inference-only time, pipeline time and their ratio (target <= 1.3x), and the
peak RSS of the process (target <= 400 MB with the default settings). No assertions.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edge.detect import Detector, DetectorSettings, create
from edge.detect.prefetch import DEFAULT_DEPTH, prefetch
from edge.ingest import MediaError, load_image
from models.registry import import_dir

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"


def sequential(detector: Detector, paths: list[Path]) -> tuple[float, float]:
    """Decode, detect, repeat; (wall seconds, summed inference seconds)."""
    infer = 0.0
    start = time.perf_counter()
    for path in paths:
        image = load_image(path)
        result = detector.detect(image)
        infer += result.total_ms / 1000.0
    return time.perf_counter() - start, infer


def pipelined(detector: Detector, paths: list[Path], depth: int) -> tuple[float, float]:
    """Decode on the prefetch thread while detecting; (wall seconds, summed inference s)."""
    infer = 0.0
    start = time.perf_counter()
    for _path, image in prefetch(paths, load_image, depth):
        if isinstance(image, MediaError):
            continue
        infer += detector.detect(image).total_ms / 1000.0
    return time.perf_counter() - start, infer


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (ru_maxrss is KB on Linux, B on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def main() -> None:
    """Import the models, run both loops on the same detector, print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the folder")
    parser.add_argument("--depth", type=int, default=DEFAULT_DEPTH)
    args = parser.parse_args()
    paths = sorted((args.shared / "data" / "images").glob("*.jpg")) * args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        import_dir(args.shared / "models", store)
        settings = DetectorSettings(threads=args.threads)
        detector = create(settings, store)
        detector.detect(load_image(paths[0]))  # warm-up
        print(
            f"{len(paths)} images, backend {settings.backend} tiling={settings.tiling} "
            f"ir={settings.ir_enhance}, {args.threads} threads, prefetch depth {args.depth}"
        )
        print(f"{'loop':12} {'img/s':>7} {'wall s':>8} {'detect s':>9} {'wall/detect':>12}")
        loops: dict[str, Callable[[], tuple[float, float]]] = {
            "sequential": lambda: sequential(detector, paths),
            "prefetched": lambda: pipelined(detector, paths, args.depth),
        }
        for name, run in loops.items():
            wall, infer = run()
            print(
                f"{name:12} {len(paths) / wall:7.1f} {wall:8.2f} {infer:9.2f} {wall / infer:11.2f}x"
            )
        print(f"peak RSS {peak_rss_mb():.0f} MB (default settings)")


if __name__ == "__main__":
    main()
