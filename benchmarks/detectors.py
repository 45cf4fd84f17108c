"""Detector benchmark on the shared images: image-level recall/precision per configuration and
per image kind, a threshold sweep with its plateau, and a leave-one-out estimate.

Usage: python -m benchmarks.detectors [--shared ../shared] [--threads 2] [--quick]
Every configuration runs once with a low floor threshold; the image-level decision at any
higher per-category threshold follows from each image's best score per category, so the
sweep is exact without re-running. Not a test: figures vary by machine.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from broker.payloads import Category
from edge.detect import DetectorSettings, create, detector_settings
from edge.detect.categories import ANIMAL_CATEGORIES
from edge.eval import EvalReport, Label, Outcome, describe, read_labels, report, run
from models.registry import import_dir

logger = logging.getLogger(__name__)

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
FLOOR = 0.05  # below every threshold swept
GRID = np.round(np.arange(0.10, 0.71, 0.05), 2)
TARGETS = {"animal_p": 0.95, "animal_r": 0.95, "bird_p": 0.90, "bird_r": 0.85}
KINDS = ("camtrap_day", "camtrap_day_ir", "camtrap_night")
MODELS = {"yolox": "yolox_nano_416_coco", "nanodet": "nanodet_m_416_coco"}
FLOORS: dict[str, object] = {
    "score_threshold": FLOOR,
    # No per-category defaults: with them bird boxes below 0.40 would come out as "animal" and
    # the sweep could not see them.
    "category_thresholds": {},
}
# Camera-trap detector, cascades and the full ensemble (issue 13), each with IR enhancement.
CASCADES: list[dict[str, object]] = [
    {"backend": "mdlite", "model": "mdlite_yolox_tiny_416", "ir_enhance": "off"},
    {"backend": "mdlite", "model": "mdlite_yolox_tiny_640", "ir_enhance": "off"},
    {"backend": "ensemble", "second_look_below": None},
    {"backend": "ensemble"},  # the default: YOLOX-Nano, NanoDet-m where it is unsure
    {"backend": "ensemble", "members": ["yolox_nano_416_coco", "mdlite_yolox_tiny_416"]},
    {"backend": "ensemble", "members": ["yolox_nano_416_coco", "mdlite_yolox_tiny_640"]},
    {
        "backend": "ensemble",
        "members": ["yolox_nano_416_coco", "nanodet_m_416_coco", "mdlite_yolox_tiny_416"],
    },
]


def configurations(quick: bool) -> list[DetectorSettings]:
    """Back-end x tiling x IR enhancement (x fusion for the ensemble); --quick: the single
    models, the camera-trap detector and the cascades, without tiling."""
    out: list[DetectorSettings] = []
    if quick:
        for backend in MODELS:
            out.append(detector_settings(backend=backend, model=MODELS[backend], **FLOORS))
        out += [detector_settings({**c, **FLOORS}) for c in CASCADES]
        return out
    backends = ("yolox", "nanodet", "ensemble")
    tilings: Sequence[tuple[bool, float]] = ((False, 1.0), (True, 1.0), (True, 0.7))
    irs: Sequence[str] = ("off", "enhanced", "both")
    for backend, (tiling, factor), ir in itertools.product(backends, tilings, irs):
        fusions = ("avg", "max") if backend == "ensemble" else ("avg",)
        for fusion in fusions:
            data: dict[str, object] = {
                "backend": backend,
                **FLOORS,
                "tiling": tiling,
                "tile_only_factor": factor,
                "ir_enhance": ir,
            }
            if backend == "ensemble":
                data["fusion"] = fusion
                data["second_look_below"] = None  # every member on every frame (avg needs it)
            if backend in MODELS:
                data["model"] = MODELS[backend]
            out.append(detector_settings(data))
    return out + [detector_settings({**c, **FLOORS}) for c in CASCADES]


def thresholds(animal: float, bird: float) -> dict[Category, float]:
    """Per-category thresholds: animal and dog share one, bird its own."""
    return {Category.ANIMAL: animal, Category.DOG: animal, Category.BIRD: bird}


def figures(outcomes: Sequence[Outcome], animal: float, bird: float) -> EvalReport:
    """The report at these thresholds (person and vehicle do not enter the figures)."""
    th = thresholds(animal, bird)
    return report(outcomes, lambda c: th.get(c, 1.0))


def _ratio(value: float, target: float) -> float:
    return 0.0 if value != value else value / target


def animal_objective(outcomes: Sequence[Outcome], animal: float) -> float:
    """Worst of animal P/0.95 and R/0.80 (bird boxes count from the animal threshold up)."""
    rep = figures(outcomes, animal, 1.0)
    return min(
        _ratio(rep.animal.precision, TARGETS["animal_p"]),
        _ratio(rep.animal.recall, TARGETS["animal_r"]),
    )


def bird_objective(outcomes: Sequence[Outcome], bird: float) -> float:
    """Worst of bird P/0.90 and R/0.85."""
    rep = figures(outcomes, 1.0, bird)
    return min(
        _ratio(rep.bird.precision, TARGETS["bird_p"]), _ratio(rep.bird.recall, TARGETS["bird_r"])
    )


def robust_choice(values: Sequence[float]) -> tuple[float, float]:
    """Grid threshold with the best mean objective over it and its two neighbours (a plateau,
    not a spike); among equals the middle one. Returns (threshold, objective there)."""
    arr = np.asarray(values, dtype=np.float64)
    padded = np.pad(arr, 1, mode="edge")
    smooth = (padded[:-2] + padded[1:-1] + padded[2:]) / 3.0
    best = np.flatnonzero(smooth >= smooth.max() - 1e-9)
    i = int(best[len(best) // 2])
    return float(GRID[i]), float(arr[i])


def choose(outcomes: Sequence[Outcome]) -> tuple[float, float, float, float]:
    """Robust (animal threshold, its objective, bird threshold, its objective)."""
    a, oa = robust_choice([animal_objective(outcomes, t) for t in GRID])
    b, ob = robust_choice([bird_objective(outcomes, t) for t in GRID])
    return a, oa, b, ob


def leave_one_out(outcomes: Sequence[Outcome]) -> str:
    """Choose thresholds without each image, decide that image with them; pooled figures."""
    decided: list[Outcome] = []
    for i, held in enumerate(outcomes):
        a, _, b, _ = choose([o for j, o in enumerate(outcomes) if j != i])
        th = thresholds(a, b)
        kept = {}
        for c, s in held.scores.items():
            if s >= th.get(c, 1.0):
                kept[c] = s
            elif c in ANIMAL_CATEGORIES and s >= a:
                kept[Category.ANIMAL] = max(kept.get(Category.ANIMAL, 0.0), s)
        decided.append(Outcome(held.label, kept, held.inference_ms, held.total_ms))
    rep = report(decided, lambda c: 1e-9 if c in ANIMAL_CATEGORIES else 1.0)
    return (
        f"aP {rep.animal.precision:.2f} aR {rep.animal.recall:.2f} "
        f"bP {rep.bird.precision:.2f} bR {rep.bird.recall:.2f}"
    )


def curve(outcomes: Sequence[Outcome]) -> str:
    """Animal P/R and bird P/R along the threshold grid (the trade-off)."""
    rows = []
    for t in GRID:
        rep = figures(outcomes, float(t), float(t))
        rows.append(
            f"    {t:.2f}: animal P {rep.animal.precision:.2f} R {rep.animal.recall:.2f} "
            f"(FP {rep.animal.fp})  bird P {rep.bird.precision:.2f} R {rep.bird.recall:.2f}"
        )
    return "\n".join(rows)


def kind_recalls(outcomes: Sequence[Outcome], animal: float, bird: float) -> str:
    """Animal recall per camera-trap kind and the false-animal count."""
    rep = figures(outcomes, animal, bird)
    parts = [f"{rep.per_kind[k][0].recall:4.2f}" if k in rep.per_kind else "  - " for k in KINDS]
    return " ".join(parts) + f" {rep.animal.fp:3d}"


def main() -> None:
    """Import the models into a temp store, run every configuration, print the tables."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=0.3, help="row of the first table")
    parser.add_argument("--quick", action="store_true", help="fewer configurations")
    parser.add_argument("--curves", action="store_true", help="print the trade-off curves")
    args = parser.parse_args()
    images = args.shared / "data" / "images"
    labels: list[Label] = read_labels(args.shared / "data" / "labels.csv")
    t = args.threshold
    print(f"{len(labels)} labelled images, {args.threads} threads, floor {FLOOR}")
    print(
        f"{'config':34} {'ms':>6} | @{t:.2f}: {'aP':>4} {'aR':>4} {'bP':>4} {'bR':>4} "
        f"{'day':>4} {'dIR':>4} {'nght':>4} {'FPa':>3} | chosen a(obj) b(obj) -> "
        f"aP aR bP bR [day dIR nght FPa] | leave-one-out"
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        import_dir(args.shared / "models", store)
        for settings in configurations(args.quick):
            settings = settings.model_copy(update={"threads": args.threads})
            outcomes = run(create(settings, store), images, labels)
            rep = figures(outcomes, t, t)
            a, oa, b, ob = choose(outcomes)
            at = figures(outcomes, a, b)
            print(
                f"{describe(settings):34} {rep.median_total_ms:6.0f} | "
                f"{rep.animal.precision:4.2f} {rep.animal.recall:4.2f} "
                f"{rep.bird.precision:4.2f} {rep.bird.recall:4.2f} "
                f"{kind_recalls(outcomes, t, t)} | {a:.2f}({oa:.2f}) {b:.2f}({ob:.2f}) -> "
                f"{at.animal.precision:.2f} {at.animal.recall:.2f} "
                f"{at.bird.precision:.2f} {at.bird.recall:.2f} "
                f"[{kind_recalls(outcomes, a, b)}] | {leave_one_out(outcomes)}",
                flush=True,
            )
            if args.curves:
                print(curve(outcomes))


if __name__ == "__main__":
    main()
