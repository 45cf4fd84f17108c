"""Bird strategies on the shared images: can any reach image-level bird P >= 0.90, R >= 0.85?

Usage: python -m benchmarks.bird_strategies [--shared ../shared] [--threads 2] [--verbose]
Every strategy gives each labelled image (bird label 0 or 1; blank = unsure, left out) one
bird score, the best over its candidate bird boxes (0 when it has none). Printed per strategy:
the best recall any single threshold reaches at P >= 0.90 (all distinct scores swept; ties go
to the highest threshold) with P/R there; a leave-one-out estimate (the threshold is chosen
that way on the other images, then decides the held-out one); the scores of the three hard
birds beside the best-scoring non-bird image; and ms/image (zoom and classifier_gate include
the default detector's pass, whose boxes they re-examine; JPEG decoding is left out). Every
bird box is kept from 0.05 up, so the sweep is exact. Also printed: the iNat classifier's
"background" output over all bird crops, and a conclusion drawn from the figures. Not a
test: figures vary by machine.

Strategies: default (shipped ensemble), yolox, nanodet, flip_tta, tiling, sahi, zoom and
classifier_gate (see each function). flip_tta, sahi and zoom run the ensemble members on
arrays themselves and take the best bird-class score per member (class-wise NMS only); the
default instead fuses boxes across models first, which can label a bird box "dog"/"animal".
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from broker.payloads import Category
from edge.classify import ClassifierSettings, crop_box
from edge.classify import create as create_classifier
from edge.classify.plugins.inat import BACKGROUND_LABEL, InatBirdClassifier
from edge.detect import (
    DEFAULT_NMS_IOU,
    Detection,
    Detector,
    DetectorSettings,
    create,
    detector_settings,
)
from edge.detect.categories import ANIMAL_CATEGORIES, COCO_BIRD
from edge.detect.enhance import clahe_luminance, is_infrared
from edge.detect.nms import iou_one_to_many, nms
from edge.detect.plugins.ensemble import EnsembleDetector
from edge.detect.postprocess import FloatArray, ImageArray, Window, drop_cut_boxes
from edge.detect.runtime import OnnxDetector
from edge.eval import Counts, Label, read_labels
from edge.ingest import MediaError, load_image
from models.registry import import_dir
from models.species import load_catalogue

logger = logging.getLogger(__name__)

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
FLOOR = 0.05  # every bird box from here up is kept: below any threshold worth sweeping
TARGET_P, TARGET_R = 0.90, 0.85
MODELS = {"yolox": "yolox_nano_416_coco", "nanodet": "nanodet_m_416_coco"}
# The three birds the default misses, with the short names of their table columns.
HARD_BIRDS = {
    "ct_ena24_5899.jpg": "chicken",  # half-hidden white chicken
    "ct_md_sage_grouse_hidden.jpg": "grouse",  # camouflaged sage grouse
    "ct_md_wellington_missed_bird.jpg": "grey",  # bird in a greyscale frame
}
FLIP_IOU = 0.5  # an original and an un-mirrored box are one object from this IoU up
SLICE_FRACTION = 0.5  # sahi: slice side as a fraction of the short image side
SLICE_OVERLAP = 0.2
CANDIDATE_SCORE = 0.12  # zoom / classifier_gate: default-detector boxes re-examined
ZOOM_FACTOR = 2.0  # zoom crop side = this x the candidate's longer side ...
ZOOM_MIN_SIDE = 160  # ... but at least this many pixels
ZOOM_IOU = 0.3
CLASSIFIER_GATES = (0.1, 0.2, 0.3, 0.5)
CROP_MARGIN = 0.1


@dataclass(frozen=True)
class Sample:
    """One labelled image: the decoded frame and what the members see (CLAHE copy if IR)."""

    label: Label
    image: ImageArray
    frame: ImageArray

    @property
    def is_bird(self) -> bool:
        """The bird label (samples are only built for images labelled 0 or 1)."""
        return bool(self.label.bird)


@dataclass(frozen=True)
class Result:
    """One strategy's image-level bird scores (aligned with the samples) and its cost."""

    name: str
    scores: list[float]
    ms_per_image: float


def low_floor(threads: int, **changes: object) -> DetectorSettings:
    """Default detector settings with every box kept from FLOOR up (bird boxes stay birds)."""
    data: dict[str, object] = {
        "threads": threads,
        "score_threshold": FLOOR,
        "category_thresholds": {Category.ANIMAL: FLOOR, Category.DOG: FLOOR, Category.BIRD: FLOOR},
    }
    data.update(changes)
    return detector_settings(data)


def members_of(detector: Detector) -> list[OnnxDetector]:
    """The ONNX members of an ensemble detector."""
    if not isinstance(detector, EnsembleDetector):
        raise TypeError(f"expected the ensemble detector, got {type(detector).__name__}")
    out = [m for m in detector.members if isinstance(m, OnnxDetector)]
    if len(out) != len(detector.members):
        raise TypeError("every ensemble member must be an ONNX detector")
    return out


def bird_boxes(member: OnnxDetector, array: ImageArray) -> tuple[FloatArray, FloatArray]:
    """The member's bird boxes (array pixels) from FLOOR up after NMS, and their scores."""
    # _run: the member's raw boxes and class scores before any threshold (no public API).
    boxes, class_scores, _ = member._run(np.ascontiguousarray(array))
    rows = np.flatnonzero(class_scores[:, COCO_BIRD] >= FLOOR)
    cand = boxes[rows].astype(np.float32)
    scores = class_scores[rows, COCO_BIRD].astype(np.float32)
    keep = nms(cand, scores, np.zeros(len(rows), dtype=np.intp), DEFAULT_NMS_IOU)
    return cand[keep], scores[keep]


def best_bird(detections: Sequence[Detection]) -> float:
    """Best score of the bird-category detections, 0 without any."""
    return max((d.score for d in detections if d.category == Category.BIRD), default=0.0)


def tally(scores: Sequence[float], truths: Sequence[bool], threshold: float) -> Counts:
    """Image-level counts when score >= threshold means "bird"."""
    counts = Counts()
    for score, truth in zip(scores, truths, strict=True):
        counts.add(truth, score >= threshold)
    return counts


def choose_threshold(scores: Sequence[float], truths: Sequence[bool]) -> float:
    """Threshold (a distinct score) with the best recall at P >= TARGET_P, ties the highest;
    +inf (nothing is a bird) when no threshold reaches that precision."""
    best, best_recall = math.inf, -1.0
    for t in sorted(set(scores), reverse=True):
        c = tally(scores, truths, t)
        if c.tp + c.fp and c.precision >= TARGET_P and c.recall > best_recall:
            best, best_recall = t, c.recall
    return best


def leave_one_out(scores: Sequence[float], truths: Sequence[bool]) -> Counts:
    """Decide each image with the threshold chosen on all the others; pooled counts."""
    counts = Counts()
    for i, (score, truth) in enumerate(zip(scores, truths, strict=True)):
        others = [j for j in range(len(scores)) if j != i]
        t = choose_threshold([scores[j] for j in others], [truths[j] for j in others])
        counts.add(truth, score >= t)
    return counts


def detector_score(detector: Detector) -> Callable[[Sample], float]:
    """Image score of a whole detector: its best bird detection."""
    return lambda s: best_bird(detector.detect(s.image).detections)


def timed(
    samples: Sequence[Sample], score_of: Callable[[Sample], float]
) -> tuple[list[float], float]:
    """Scores of every sample and the mean wall time per image in ms."""
    start = time.perf_counter()
    scores = [score_of(s) for s in samples]
    return scores, (time.perf_counter() - start) * 1000.0 / max(len(samples), 1)


def flip_score(members: Sequence[OnnxDetector], sample: Sample) -> float:
    """Horizontal-flip test-time augmentation.

    Each member runs on the frame and its mirror; mirrored boxes are un-mirrored. A bird box
    of either view scores the mean of its own score and the best bird score of the other view
    among boxes with IoU >= FLIP_IOU to it (0 when none: a one-view box keeps half). The image
    score is the best such mean over both views and both members.
    """
    width = sample.frame.shape[1]
    best = 0.0
    for member in members:
        a_boxes, a_scores = bird_boxes(member, sample.frame)
        b_boxes, b_scores = bird_boxes(member, sample.frame[:, ::-1])
        b_boxes = b_boxes[:, [2, 1, 0, 3]] * np.array([-1, 1, -1, 1], np.float32)
        b_boxes += np.array([width, 0, width, 0], np.float32)
        views = ((a_boxes, a_scores, b_boxes, b_scores), (b_boxes, b_scores, a_boxes, a_scores))
        for boxes, scores, other_boxes, other_scores in views:
            for box, score in zip(boxes, scores.tolist(), strict=True):
                matched = other_scores[iou_one_to_many(box, other_boxes) >= FLIP_IOU]
                other = float(matched.max()) if len(matched) else 0.0
                best = max(best, (score + other) / 2.0)
    return best


def slice_windows(width: int, height: int) -> list[Window]:
    """sahi: square slices of SLICE_FRACTION x the short side, SLICE_OVERLAP apart, covering."""
    side = max(1, int(min(width, height) * SLICE_FRACTION))
    step = max(1, int(side * (1.0 - SLICE_OVERLAP)))

    def starts(length: int) -> list[int]:
        count = -(-(length - side) // step) + 1
        return [int(v) for v in np.linspace(0, length - side, count).round()]

    return [Window(x, y, x + side, y + side) for y in starts(height) for x in starts(width)]


def sahi_score(members: Sequence[OnnxDetector], sample: Sample) -> float:
    """Best bird score of both members over the full frame and every slice (slice boxes at an
    inner slice edge are cut objects and dropped)."""
    height, width = sample.frame.shape[:2]
    best = 0.0
    for member in members:
        _, scores = bird_boxes(member, sample.frame)
        best = max([best, *scores.tolist()])
        for win in slice_windows(width, height):
            boxes, scores = bird_boxes(member, sample.frame[win.y1 : win.y2, win.x1 : win.x2])
            boxes = boxes + np.array([win.x1, win.y1, win.x1, win.y1], np.float32)
            best = max([best, *scores[drop_cut_boxes(boxes, win, width, height)].tolist()])
    return best


def zoom_window(det: Detection, width: int, height: int) -> Window:
    """Square window of ZOOM_FACTOR x the box's longer side (>= ZOOM_MIN_SIDE) around it,
    shifted to lie inside the image and clipped where the image is smaller."""
    side = max(ZOOM_FACTOR * max(det.x2 - det.x1, det.y2 - det.y1), ZOOM_MIN_SIDE)

    def span(lo: float, hi: float, length: int) -> tuple[int, int]:
        start = min(max((lo + hi - side) / 2.0, 0.0), max(length - side, 0.0))
        return int(start), min(math.ceil(start + side), length)

    x1, x2 = span(det.x1, det.x2, width)
    y1, y2 = span(det.y1, det.y2, height)
    return Window(x1, y1, x2, y2)


def zoom_score(
    members: Sequence[OnnxDetector], sample: Sample, detections: Sequence[Detection]
) -> float:
    """Second look: each animal/bird/dog candidate >= CANDIDATE_SCORE is re-detected in a
    square crop around it; its bird score is the best bird score of both members among crop
    boxes with IoU >= ZOOM_IOU to it. The image score is the best candidate's (0 without)."""
    height, width = sample.frame.shape[:2]
    best = 0.0
    for det in detections:
        if det.category not in ANIMAL_CATEGORIES or det.score < CANDIDATE_SCORE:
            continue
        win = zoom_window(det, width, height)
        box = np.array([det.x1, det.y1, det.x2, det.y2], np.float32)
        for member in members:
            boxes, scores = bird_boxes(member, sample.frame[win.y1 : win.y2, win.x1 : win.x2])
            boxes = boxes + np.array([win.x1, win.y1, win.x1, win.y1], np.float32)
            matched = scores[iou_one_to_many(box, boxes) >= ZOOM_IOU]
            best = max([best, *matched.tolist()])
    return best


def classifier_gate(
    classifier: InatBirdClassifier,
    samples: Sequence[Sample],
    detections: Sequence[Sequence[Detection]],
    default_ms: float,
) -> tuple[list[Result], str]:
    """Bird candidates >= CANDIDATE_SCORE kept only when the iNat classifier's top-1
    probability on the crop reaches t; image score = detector score of the best kept box.
    One result per t, and a line on the classifier's "background" output over all crops."""
    background = classifier.labels.index(BACKGROUND_LABEL)
    per_image: list[list[tuple[float, float]]] = []  # (detector score, classifier top-1)
    bg_max, first_max, crops = 0.0, 0.0, 0
    start = time.perf_counter()
    for sample, dets in zip(samples, detections, strict=True):
        pairs: list[tuple[float, float]] = []
        for d in dets:
            if d.category != Category.BIRD or d.score < CANDIDATE_SCORE:
                continue
            crop = crop_box(sample.image, (d.x1, d.y1, d.x2, d.y2), CROP_MARGIN)
            probs = classifier.probabilities(np.ascontiguousarray(crop))
            bg_max = max(bg_max, float(probs[background]))
            first_max = max(first_max, float(probs[0]))
            crops += 1
            pairs.append((d.score, float(probs.max())))
        per_image.append(pairs)
    ms = default_ms + (time.perf_counter() - start) * 1000.0 / max(len(samples), 1)
    results = [
        Result(
            f"classifier_gate(t={t:g})",
            [max((s for s, p in pairs if p >= t), default=0.0) for pairs in per_image],
            ms,
        )
        for t in CLASSIFIER_GATES
    ]
    fact = (
        f"iNat classifier over {crops} bird crops: '{BACKGROUND_LABEL}' output (label index "
        f"{background}) max {bg_max:.4f}; output index 0 ({classifier.labels[0]}) max "
        f"{first_max:.4f}"
    )
    return results, fact


def load_samples(images: Path, labels: Sequence[Label]) -> list[Sample]:
    """Decode every image with a bird label of 0 or 1 (failures are logged and skipped)."""
    out: list[Sample] = []
    for lab in labels:
        if lab.bird is None:
            continue
        try:
            image = load_image(images / lab.file)
        except MediaError as exc:
            logger.warning("%s skipped: %s", lab.file, exc)
            continue
        frame = clahe_luminance(image) if is_infrared(image) else image
        out.append(Sample(lab, image, frame))
    return out


def run_strategies(
    samples: Sequence[Sample], store: Path, threads: int
) -> tuple[list[Result], str]:
    """Every strategy over the samples, and the classifier's background fact."""
    results: list[Result] = []

    def add(name: str, score_of: Callable[[Sample], float], extra_ms: float = 0.0) -> float:
        scores, ms = timed(samples, score_of)
        results.append(Result(name, scores, ms + extra_ms))
        logger.info("%s done (%.0f ms/image)", name, ms)
        return ms

    default = create(low_floor(threads), store)
    members = members_of(default)
    found: dict[str, list[Detection]] = {}

    def default_score(s: Sample) -> float:
        found[s.label.file] = default.detect(s.image).detections
        return best_bird(found[s.label.file])

    default_ms = add("default", default_score)
    for backend, model in MODELS.items():
        single = create(low_floor(threads, backend=backend, model=model), store)
        add(backend, detector_score(single))
    add("flip_tta", lambda s: flip_score(members, s))
    tiled = create(low_floor(threads, tiling=True), store)
    add("tiling", detector_score(tiled))
    add("sahi", lambda s: sahi_score(members, s))
    add("zoom", lambda s: zoom_score(members, s, found[s.label.file]), default_ms)
    settings = ClassifierSettings(restrict_to_catalogue=False, threads=threads)
    classifier = create_classifier(settings, store, load_catalogue())
    if not isinstance(classifier, InatBirdClassifier):
        raise TypeError(f"expected the iNat classifier, got {type(classifier).__name__}")
    dets = [found[s.label.file] for s in samples]
    gated, fact = classifier_gate(classifier, samples, dets, default_ms)
    return results + gated, fact


@dataclass(frozen=True)
class Figures:
    """What is printed for one strategy."""

    threshold: float  # best single threshold (+inf: none reaches TARGET_P)
    best: Counts
    loo: Counts
    hard: list[float | None]  # HARD_BIRDS' scores (None: not among the samples)
    top_non_bird: tuple[float, str]
    clear_birds: int  # birds scoring above every non-bird (the recall at P = 1.00)


def figures(result: Result, samples: Sequence[Sample]) -> Figures:
    """Best threshold, leave-one-out, the hard birds and the best non-bird of one strategy."""
    truths = [s.is_bird for s in samples]
    t = choose_threshold(result.scores, truths)
    by_file = {s.label.file: sc for s, sc in zip(samples, result.scores, strict=True)}
    pairs = list(zip(result.scores, samples, strict=True))
    top = max(((sc, s.label.file) for sc, s in pairs if not s.is_bird), default=(0.0, "-"))
    return Figures(
        threshold=t,
        best=tally(result.scores, truths, t),
        loo=leave_one_out(result.scores, truths),
        hard=[by_file.get(f) for f in HARD_BIRDS],
        top_non_bird=top,
        clear_birds=sum(1 for sc, s in pairs if s.is_bird and sc > top[0]),
    )


def meets(counts: Counts) -> bool:
    """Both targets met (no prediction at all never does)."""
    return counts.tp + counts.fp > 0 and counts.precision >= TARGET_P and counts.recall >= TARGET_R


def _f(value: float) -> str:
    return " -  " if value != value else f"{value:4.2f}"


def row(result: Result, fig: Figures) -> str:
    """One line of the table."""
    thr = "    -" if math.isinf(fig.threshold) else f"{fig.threshold:5.3f}"
    hard = " ".join("      -" if h is None else f"{h:7.2f}" for h in fig.hard)
    return (
        f"{result.name:22} {result.ms_per_image:6.0f} | {thr} {_f(fig.best.precision)} "
        f"{_f(fig.best.recall)} | {_f(fig.loo.precision)} {_f(fig.loo.recall)} | {hard} | "
        f"{fig.top_non_bird[0]:5.2f} {fig.top_non_bird[1]}"
    )


def conclusion(results: Sequence[Result], figs: Sequence[Figures], birds: int) -> str:
    """A paragraph drawn from the figures (nothing in it is fixed in advance)."""
    both = [(r, f) for r, f in zip(results, figs, strict=True) if meets(f.best) and meets(f.loo)]
    only_best = [r.name for r, f in zip(results, figs, strict=True) if meets(f.best)]
    target = f"R >= {TARGET_R:.2f} at P >= {TARGET_P:.2f}"
    if both:
        parts = [
            f"{r.name} (threshold {f.threshold:.3f}: P {f.best.precision:.2f} R "
            f"{f.best.recall:.2f}; leave-one-out P {f.loo.precision:.2f} R {f.loo.recall:.2f}; "
            f"{r.ms_per_image:.0f} ms/image)"
            for r, f in both
        ]
        text = f"*** {target} both at the best threshold and in leave-one-out: " + "; ".join(parts)
        text += ". ***"
    else:
        text = f"No strategy reaches {target} both at its best threshold and in leave-one-out."
        if only_best:
            text += (
                f" At the best threshold only (an in-sample choice) {', '.join(only_best)} "
                f"reach{'es' if len(only_best) == 1 else ''} it."
            )
    rb, fb = max(
        zip(results, figs, strict=True), key=lambda x: (x[1].best.recall, -x[0].ms_per_image)
    )
    rl, fl = max(
        zip(results, figs, strict=True),
        key=lambda x: (meets(x[1].loo), x[1].loo.recall, -x[0].ms_per_image),
    )
    text += (
        f" Highest recall at P >= {TARGET_P:.2f}: {rb.name} R {fb.best.recall:.2f} "
        f"({fb.best.tp} of {birds} birds); best leave-one-out: {rl.name} P "
        f"{fl.loo.precision:.2f} R {fl.loo.recall:.2f}."
    )
    clear = max(f.clear_birds for f in figs)
    text += (
        f" No strategy scores more than {clear} of {birds} birds above its best-scoring "
        "non-bird image"
    )
    hard_all = [
        r.name
        for r, f in zip(results, figs, strict=True)
        if all(h is not None and h > f.top_non_bird[0] for h in f.hard)
    ]
    text += (
        f"; all three hard birds clear it only in {', '.join(hard_all)}."
        if hard_all
        else "; in none do all three hard birds score above it."
    )
    return text


def main() -> None:
    """Import the models into a temp store, run every strategy, print the table and verdict."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--verbose", action="store_true", help="log progress")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    start = time.perf_counter()
    samples = load_samples(
        args.shared / "data" / "images", read_labels(args.shared / "data" / "labels.csv")
    )
    birds = sum(s.is_bird for s in samples)
    print(
        f"{len(samples)} images with a bird label ({birds} birds), {args.threads} threads, "
        f"bird boxes from {FLOOR}; targets P >= {TARGET_P:.2f} R >= {TARGET_R:.2f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        import_dir(args.shared / "models", store)
        results, fact = run_strategies(samples, store, args.threads)
    figs = [figures(r, samples) for r in results]
    hard = " ".join(f"{name:>7}" for name in HARD_BIRDS.values())
    print(
        f"{'':29} | {'best threshold':15} | {'LOO':9} | {'hard birds':23} |\n"
        f"{'strategy':22} {'ms/img':>6} | {'thr':>5} {'P':>4} {'R':>4} | {'P':>4} {'R':>4} | "
        f"{hard} | best non-bird"
    )
    for r, f in zip(results, figs, strict=True):
        print(row(r, f))
    print(fact)
    print(conclusion(results, figs, birds))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
