"""Detector benchmark on the shared images: median latency and image-level recall/precision.

Usage: python -m benchmarks.detectors [--shared ../shared] [--threshold 0.3] [--threads 2]
Prints one row per back-end (with and without tiling). Not a test: figures vary by machine.
"""

from __future__ import annotations

import argparse
import csv
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.detect import DetectorSettings, create
from edge.detect.categories import ANIMAL_CATEGORIES
from models.registry import import_dir, load_manifest

logger = logging.getLogger(__name__)

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
BACKENDS = ("yolox", "nanodet")


@dataclass
class Figures:
    """Measured figures of one detector configuration."""

    name: str
    infer_ms: float
    detect_ms: float
    whole_ms: float
    animal_recall: float
    bird_precision: float
    bird_recall: float
    misses: list[str]


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def _read(path: Path) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return image.astype(np.uint8, copy=False)


def measure(settings: DetectorSettings, store: Path, images: Path, labels: Path) -> Figures:
    """Run one detector over every labelled image and compute the figures."""
    detector = create(settings, store)
    rows = list(csv.DictReader(labels.open(encoding="utf-8")))
    detector.detect(_read(images / rows[0]["file"]))  # warm-up
    infer, detect, whole = [], [], []
    animal_tp = animal_n = bird_tp = bird_fp = bird_fn = 0
    misses: list[str] = []
    for row in rows:
        start = time.perf_counter()
        image = _read(images / row["file"])
        result = detector.detect(image)
        whole.append((time.perf_counter() - start) * 1000.0)
        infer.append(result.inference_ms)
        detect.append(result.total_ms)
        cats = {d.category for d in result.detections}
        if row["kind"].startswith("camtrap") and row["animal"] == "1":
            animal_n += 1
            if cats & ANIMAL_CATEGORIES:
                animal_tp += 1
            else:
                misses.append(row["file"])
        if row["bird"] in ("0", "1"):
            predicted = any(c.value == "bird" for c in cats)
            truth = row["bird"] == "1"
            bird_tp += predicted and truth
            bird_fp += predicted and not truth
            bird_fn += truth and not predicted
    name = f"{settings.model}{' +tiles' if settings.tiling else ''}"
    return Figures(
        name=name,
        infer_ms=statistics.median(infer),
        detect_ms=statistics.median(detect),
        whole_ms=statistics.median(whole),
        animal_recall=_ratio(animal_tp, animal_n),
        bird_precision=_ratio(bird_tp, bird_tp + bird_fp),
        bird_recall=_ratio(bird_tp, bird_tp + bird_fn),
        misses=misses,
    )


def main() -> None:
    """Parse arguments, import the models into a temp store, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--threshold", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--misses", action="store_true", help="list missed animal frames")
    args = parser.parse_args()
    images = args.shared / "data" / "images"
    labels = args.shared / "data" / "labels.csv"
    print(
        f"{len(list(images.glob('*.jpg')))} images, threshold {args.threshold}, "
        f"{args.threads} threads"
    )
    print(
        f"{'model':32} {'infer ms':>9} {'detect ms':>10} {'+imread ms':>11} "
        f"{'animal R':>9} {'bird P':>7} {'bird R':>7}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        import_dir(args.shared / "models", store)
        manifest = load_manifest()
        for spec in (m for m in manifest.models if m.decoder in BACKENDS):
            for tiling in (False, True):
                settings = DetectorSettings(
                    backend=spec.decoder,
                    model=spec.id,
                    threads=args.threads,
                    score_threshold=args.threshold,
                    tiling=tiling,
                )
                f = measure(settings, store, images, labels)
                print(
                    f"{f.name:32} {f.infer_ms:9.1f} {f.detect_ms:10.1f} {f.whole_ms:11.1f} "
                    f"{f.animal_recall:9.2f} {f.bird_precision:7.2f} {f.bird_recall:7.2f}"
                )
                if args.misses:
                    print("  missed:", ", ".join(f.misses))


if __name__ == "__main__":
    main()
