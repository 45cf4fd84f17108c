"""The reference gallery, leave-one-out on the shared images: does a taught species come back?

Usage: python -m benchmarks.gallery [--shared ../shared] [--draws 20]

Examples are crops of the shared images (labels.csv): the default detector's highest-scoring
animal or bird box of each image, padded as on the node, embedded by the iNat classifier's
penultimate layer. A class is the species named by `label_source` ("ENA24 (Grey Fox)"); images
whose label says the species is not what is visible are left out. Classes with two or more
images are *taught* classes; the single images (the bird photos, the MegaDetector examples)
are *other* species, in every gallery as distractors and queried as species nobody taught.

Printed:
- the similarity sweep: for each threshold, over every taught image left out (the gallery
  holds every other image), right / unidentified / wrong name; then the threshold chosen, and
  the same figures with the threshold chosen again without the image being decided (nested);
- after 1, 2, 3, 5 examples per class (random draws of the other images of each class, the
  left-out image never among them): top-1 accuracy, wrong "unidentified", wrong name, and
  where a class has too few images for that many examples, that it is left out and why;
- the unknown species: each taught class held out of the gallery entirely, its images
  queried (unidentified is right, any name is wrong), and the other species likewise;
- the same decisions with the classifier beside the gallery (as on the node: gallery, else a
  confident classifier, else unidentified).
Not a test: the figures are for reading, on few images.
"""

from __future__ import annotations

import argparse
import csv
import logging
import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from broker.payloads import Category
from edge.classify import Classification, Classifier, ClassifierSettings, crop_box
from edge.classify import create as create_classifier
from edge.classify.gallery import DEFAULT_K, DEFAULT_MIN_SIMILARITY, Gallery, combine, embed
from edge.detect import DetectorSettings
from edge.detect import create as create_detector
from edge.ingest import load_image
from models.registry import import_dir
from models.species import Catalogue, load_catalogue

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
# "ENA24 (Grey Fox)", "ENA24 (American Black Bear x3)", "ENA24 (Chicken) + visual"; a note after
# it ("- bird not clearly visible") or another wording ("label Chicken but a deer") is not taken.
ENA24 = re.compile(r"^ENA24 \((?P<name>[^)]+?)(?: x\d+)?\)(?: \+ visual)?$")
EXAMPLES = (1, 2, 3, 5)
THRESHOLDS = tuple(round(0.40 + 0.02 * i, 2) for i in range(21))  # 0.40 .. 0.80
UNIDENTIFIED = "未识别 unidentified"


@dataclass(frozen=True)
class Example:
    """One image's crop: its class, the file, the embedding and the classifier's call."""

    label: str
    file: str
    vector: npt.NDArray[np.float32]
    classification: Classification


def class_of(file: str, source: str) -> str:
    """The species an image shows: the ENA24 name, else one class per file."""
    match = ENA24.match(source.strip())
    if file.startswith("ct_ena24_"):
        return match["name"] if match else ""
    return file.rsplit(".", 1)[0]


def examples(shared: Path, store: Path) -> tuple[list[Example], Classifier, list[str]]:
    """Every usable image's crop, embedded; also the classifier and what was left out."""
    with (shared / "data" / "labels.csv").open(encoding="utf-8", newline="") as f:
        rows = {row["file"]: row for row in csv.DictReader(f)}
    detector = create_detector(DetectorSettings(), store)
    classifier = create_classifier(ClassifierSettings(), store, load_catalogue())
    out, skipped = [], []
    for file, row in sorted(rows.items()):
        if row["animal"].strip() != "1":
            continue
        name = class_of(file, row["label_source"])
        if not name:
            skipped.append(f"{file} (label: {row['label_source'].strip()})")
            continue
        image = load_image(shared / "data" / "images" / file)
        boxes = [
            d
            for d in detector.detect(image).detections
            if d.category in (Category.ANIMAL, Category.BIRD, Category.DOG)
        ]
        if not boxes:
            skipped.append(f"{file} (no animal or bird box)")
            continue
        d = max(boxes, key=lambda b: b.score)
        crop = crop_box(image, (d.x1, d.y1, d.x2, d.y2), classifier.settings.crop_margin)
        classification, vector = classifier.classify_embedded(crop)
        out.append(
            Example(
                name, file, embed(classifier, crop) if vector is None else vector, classification
            )
        )
    return out, classifier, skipped


def gallery_of(items: Sequence[Example]) -> Gallery:
    """The gallery holding these examples."""
    return Gallery(tuple(e.label for e in items), np.stack([e.vector for e in items]))


@dataclass
class Tally:
    """Right names, wrong "unidentified" and wrong names over some queries."""

    right: int = 0
    unidentified: int = 0
    wrong: int = 0

    def add(self, truth: str | None, said: str | None) -> None:
        """`truth` None: the species is not in the gallery (unidentified is right)."""
        if said == truth:
            self.right += 1
        elif said is None:
            self.unidentified += 1
        else:
            self.wrong += 1

    @property
    def n(self) -> int:
        return self.right + self.unidentified + self.wrong

    def line(self) -> str:
        n = max(self.n, 1)
        return (
            f"right {self.right / n:6.1%}  unidentified {self.unidentified / n:6.1%}  "
            f"wrong name {self.wrong / n:6.1%}  (n={self.n})"
        )


def said_by_gallery(gallery: Gallery, query: Example, threshold: float) -> str | None:
    """The gallery's species for the query, None for unidentified."""
    match = gallery.nearest(query.vector, DEFAULT_K, threshold)
    return None if match is None else match.label


def said_with_classifier(
    gallery: Gallery, query: Example, threshold: float, catalogue: Catalogue
) -> str | None:
    """As on the node: the gallery, else a confident classifier, else unidentified."""
    match = gallery.nearest(query.vector, DEFAULT_K, threshold)
    best = combine(query.classification, match, catalogue).best
    return None if best is None else best.scientific_name


def sweep(items: Sequence[Example], taught: set[str]) -> list[tuple[float, Tally, Tally]]:
    """Per threshold: taught images left out one at a time, and every class held out."""
    rows = []
    for threshold in THRESHOLDS:
        known, unknown = Tally(), Tally()
        for q in items:
            if q.label in taught:
                rest = gallery_of([e for e in items if e is not q])
                known.add(q.label, said_by_gallery(rest, q, threshold))
            without = gallery_of([e for e in items if e.label != q.label])
            unknown.add(None, said_by_gallery(without, q, threshold))
        rows.append((threshold, known, unknown))
    return rows


def choose(rows: Sequence[tuple[float, Tally, Tally]]) -> float:
    """The threshold with the most right names less wrong ones, taught and unknown together
    (a wrong name costs as much as a right one gains: staff must undo it); ties: the higher."""

    def score(row: tuple[float, Tally, Tally]) -> tuple[float, float]:
        _, known, unknown = row
        gain = known.right / max(known.n, 1)
        cost = known.wrong / max(known.n, 1) + unknown.wrong / max(unknown.n, 1)
        return gain - cost, row[0]

    return max(rows, key=score)[0]


def nested(items: Sequence[Example]) -> tuple[Tally, Tally, list[float]]:
    """Each image decided with a threshold chosen on the other images only: an estimate of
    the shipped threshold's figures that does not see the image it is measured on."""
    known, unknown, picked = Tally(), Tally(), []
    for q in items:
        rest = [e for e in items if e is not q]
        counts = Counter(e.label for e in rest)
        threshold = choose(sweep(rest, {name for name, n in counts.items() if n >= 2}))
        picked.append(threshold)
        if counts[q.label] >= 1:
            known.add(q.label, said_by_gallery(gallery_of(rest), q, threshold))
        without = gallery_of([e for e in rest if e.label != q.label])
        unknown.add(None, said_by_gallery(without, q, threshold))
    return known, unknown, picked


def after_examples(
    items: Sequence[Example],
    taught: set[str],
    per_class: int,
    draws: int,
    threshold: float,
    catalogue: Catalogue,
) -> tuple[Tally, Tally, list[str]]:
    """Gallery alone and with the classifier, `per_class` examples of every taught class."""
    rng = random.Random(per_class)
    alone, beside = Tally(), Tally()
    short = sorted(
        f"{name} ({n} images: {n - 1} left when one is queried)"
        for name, n in Counter(e.label for e in items if e.label in taught).items()
        if n - 1 < per_class
    )
    for q in items:
        if q.label not in taught:
            continue
        own = [e for e in items if e.label == q.label and e is not q]
        if len(own) < per_class:
            continue
        others = [e for e in items if e.label not in taught]  # the single images, every time
        for _ in range(draws):
            chosen = rng.sample(own, per_class)
            for name in sorted(taught - {q.label}):
                pool = [e for e in items if e.label == name]
                chosen += rng.sample(pool, min(per_class, len(pool)))
            gallery = gallery_of(chosen + others)
            alone.add(q.label, said_by_gallery(gallery, q, threshold))
            beside.add(q.label, said_with_classifier(gallery, q, threshold, catalogue))
    return alone, beside, short


def main() -> None:
    """Embed the shared images, sweep the threshold, print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--draws", type=int, default=20, help="random galleries per query")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        import_dir(args.shared / "models", Path(tmp))
        items, classifier, skipped = examples(args.shared, Path(tmp))
    catalogue = classifier.catalogue
    counts = Counter(e.label for e in items)
    taught = {name for name, n in counts.items() if n >= 2}
    print(
        f"{len(items)} crops; taught classes (2+ images): "
        + ", ".join(f"{name} {counts[name]}" for name in sorted(taught))
    )
    print(f"other species (1 image each): {sum(n == 1 for n in counts.values())}")
    for s in skipped:
        print(f"  left out: {s}")
    print(
        f"\nthreshold sweep (k={DEFAULT_K}; taught: each image left out; unknown: its class "
        "held out of the gallery)"
    )
    rows = sweep(items, taught)
    for threshold, known, unknown in rows:
        print(f"  {threshold:.2f}  taught: {known.line()}\n        unknown: {unknown.line()}")
    chosen = choose(rows)
    print(f"chosen threshold {chosen:.2f} (shipped default {DEFAULT_MIN_SIMILARITY:.2f})")
    known, unknown, picked = nested(items)
    print(
        "nested leave-one-out (the threshold chosen again without the query, "
        f"{min(picked):.2f}-{max(picked):.2f}):\n"
        f"        taught: {known.line()}\n        unknown: {unknown.line()}"
    )

    print(
        f"\nafter n examples per class, threshold {DEFAULT_MIN_SIMILARITY:.2f}, "
        f"{args.draws} draws per query"
    )
    for n in EXAMPLES:
        alone, beside, short = after_examples(
            items, taught, n, args.draws, DEFAULT_MIN_SIMILARITY, catalogue
        )
        print(f"  {n}: gallery      {alone.line()}")
        print(f"     + classifier {beside.line()}")
        if short:
            print(f"     too few images for {n}: " + "; ".join(short))

    print("\nunknown species (its class held out of the gallery entirely; unidentified is right)")
    for name in sorted(counts):
        held = [e for e in items if e.label == name]
        rest = gallery_of([e for e in items if e.label != name])
        alone, beside = Tally(), Tally()
        for q in held:
            alone.add(None, said_by_gallery(rest, q, DEFAULT_MIN_SIMILARITY))
            beside.add(None, said_with_classifier(rest, q, DEFAULT_MIN_SIMILARITY, catalogue))
        said = [said_with_classifier(rest, q, DEFAULT_MIN_SIMILARITY, catalogue) for q in held]
        print(
            f"  {name:34} gallery unidentified {alone.right}/{alone.n}, "
            f"with classifier {beside.right}/{beside.n}: "
            + ", ".join(s or UNIDENTIFIED for s in said)
        )
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
